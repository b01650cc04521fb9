/**
 * The composition root: the only place that reads Config to choose and build adapters.
 * Everything else receives what it needs as arguments.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { ReadinessCheck } from './api/operations.ts';
import type { Config } from './config.ts';
import { EmbeddingModels } from './embeddings/embedding-models.ts';
import { DocumentWorkerPool } from './ingest/document-worker-pool.ts';
import { IngestPipeline } from './ingest/pipeline.ts';
import { WordPieceTokenCounter } from './ingest/token-counter.ts';
import { ExpirySweeper } from './knowledge/expiry-sweeper.ts';
import { FileService } from './knowledge/file-service.ts';
import { IngestReconciler } from './knowledge/ingest-reconciler.ts';
import { jobOf, KnowledgeBaseService, LEXICAL_ONLY, type DefaultEmbeddingModel } from './knowledge/knowledge-base-service.ts';
import { MemoryRateLimiter, type RateLimiter } from './limits/rate-limiter.ts';
import { RedisRateLimiter } from './limits/redis-rate-limiter.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { ModelRegistry } from './models/model-registry.ts';
import { ModelRouter } from './models/model-router.ts';
import { BullIngestQueue } from './queue/bullmq-queue.ts';
import { InProcessIngestQueue } from './queue/in-process-queue.ts';
import type { IngestQueue } from './queue/ingest-queue.ts';
import { GroundedChat } from './rag/grounded-chat.ts';
import { createReranker } from './rag/reranker.ts';
import { Retriever } from './rag/retriever.ts';
import { ApiKeyStore } from './store/api-keys.ts';
import { LocalBlobStore, type BlobStore } from './store/blob-store.ts';
import { openDatabase, type Database } from './store/database.ts';
import { StagingSweeper } from './store/staging-sweeper.ts';
import { FileStore } from './store/files.ts';
import { KbFileStore } from './store/kb-files.ts';
import { KnowledgeBaseStore } from './store/knowledge-bases.ts';
import { migrate } from './store/migrations.ts';
import { UsageStore } from './store/usage.ts';
import { Bm25Encoder } from './vectors/bm25-encoder.ts';
import { ManagedQdrant } from './vectors/managed-qdrant.ts';
import { QdrantChunkStore } from './vectors/qdrant-chunk-store.ts';

export interface Services {
  config: Config;
  logger: Logger;
  db: Database;
  metrics: Metrics;
  keys: ApiKeyStore;
  rateLimiter: RateLimiter;
  usage: UsageStore;
  modelRegistry: ModelRegistry;
  modelRouter: ModelRouter;
  embeddings: EmbeddingModels;
  blobs: BlobStore;
  chunkStore: QdrantChunkStore;
  queue: IngestQueue;
  pipeline: IngestPipeline;
  files: FileService;
  knowledgeBases: KnowledgeBaseService;
  retriever: Retriever;
  groundedChat: GroundedChat;
  /** Reclaims expired vector stores and files; runs every CAIRN_EXPIRY_SWEEP_INTERVAL_MS in every process. */
  expirySweeper: ExpirySweeper;
  readiness: ReadinessCheck[];
  /** Re-enqueues files left `in_progress` (embedded mode: by a restart). */
  resumeIngestion(): Promise<number>;
  /** Periodically re-enqueues files `in_progress` whose job was lost; running where jobs run (workers, the embedded API). */
  reconciler: IngestReconciler;
  close(): Promise<void>;
}

/** Which process this is: the API (enqueues, and runs jobs itself in embedded mode) or a BullMQ worker. */
export type Role = 'api' | 'worker';

async function startVectorStore(config: Config, logger: Logger): Promise<{ url: string; stop(): Promise<void> }> {
  if (config.qdrantUrl) return { url: config.qdrantUrl, stop: async () => undefined };
  const managed = await ManagedQdrant.start({
    binary: config.qdrantBin,
    storageDir: path.join(config.dataDir, 'qdrant'),
    logger: logger.child({ component: 'qdrant' }),
  });
  // ManagedQdrant.start logs 'managed Qdrant started' itself (with its storage directory).
  return { url: managed.url, stop: () => managed.stop() };
}

/**
 * The default embedding model is checked once at startup. If it cannot be loaded (no weights
 * cached and no download allowed, say), one warning is logged and new knowledge bases that do
 * not name a model become lexical-only, visibly (`embedding_model: "none"`).
 */
function defaultEmbeddingModelCheck(embeddings: EmbeddingModels, logger: Logger): () => Promise<DefaultEmbeddingModel> {
  let checked: Promise<DefaultEmbeddingModel> | undefined;
  return () => {
    checked ??= (async () => {
      const embedder = embeddings.default();
      if (!embedder) return { id: LEXICAL_ONLY };
      try {
        await embedder.dimensions();
        return { id: embedder.id };
      } catch (error) {
        const reason = (error as Error).message;
        logger.warn(
          { model: embedder.id, reason },
          'default embedding model unavailable: new knowledge bases without an explicit embedding_model will be lexical-only (BM25)',
        );
        return { id: LEXICAL_ONLY, unavailable: { model: embedder.id, reason } };
      }
    })();
    return checked;
  };
}

export interface ServiceOptions {
  /** What expiry is judged by; tests pass one they can move. */
  clock?: () => Date;
}

export async function createServices(config: Config, logger: Logger, role: Role = 'api', options: ServiceOptions = {}): Promise<Services> {
  const clock = options.clock ?? (() => new Date());
  const db = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
    onError: (error) => logger.warn({ err: error }, 'database connection lost; it will be re-established'),
  });
  const applied = await migrate(db);
  if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated');

  const metrics = createMetrics();
  const modelRegistry = new ModelRegistry(config.models);
  const embeddings = new EmbeddingModels({
    configs: config.embeddings,
    defaultModelId: config.defaultEmbeddingModel,
    modelsDir: config.modelsDir,
    cacheDir: path.join(config.dataDir, 'model-cache'),
    allowDownload: config.allowModelDownload,
    logger,
  });
  const usage = new UsageStore(db, (error) => logger.error({ err: error }, 'could not write usage records'));
  const vectorStore = await startVectorStore(config, logger);
  const chunkStore = new QdrantChunkStore({ url: vectorStore.url, apiKey: config.qdrantApiKey });
  const blobs = new LocalBlobStore(path.join(config.dataDir, 'blobs'));
  // Only API processes receive uploads. A minute past the request timeout leaves a received upload time to be committed.
  const stagingSweeper =
    role === 'api' ? new StagingSweeper(blobs, { maxAgeMs: config.requestTimeoutMs + 60_000, everyMs: config.requestTimeoutMs, logger }) : undefined;
  await stagingSweeper?.start();
  const fileStore = new FileStore(db, clock);
  const kbStore = new KnowledgeBaseStore(db, clock);
  const kbFiles = new KbFileStore(db);
  const bm25 = new Bm25Encoder();
  // Chunks and prompts are measured with the shipped BERT WordPiece tokenizer, the tokenizer of
  // the default embedders (bge, MiniLM, e5); other tokenizers get counts that are close, and the
  // prompt budget keeps a margin for the difference.
  let tokenCounterLoad: Promise<WordPieceTokenCounter> | undefined;
  const tokenCounter = () => (tokenCounterLoad ??= WordPieceTokenCounter.load());
  const documentWorkers = new DocumentWorkerPool(config.parsing, logger);
  const pipeline = new IngestPipeline({
    kbs: kbStore,
    kbFiles,
    files: fileStore,
    blobs,
    chunkFile: (bytes, filename, chunking, signal) => documentWorkers.chunkFile(bytes, filename, chunking, signal),
    embeddings,
    bm25,
    chunkStore,
    logger,
    batchSize: config.ingest.batchSize,
  });
  const retry = { attempts: config.ingest.attempts, backoffMs: config.ingest.backoffMs };
  const queue: IngestQueue = config.redisUrl
    ? new BullIngestQueue(config.redisUrl, config.ingest.queueName, retry, logger)
    : new InProcessIngestQueue(pipeline.handle, logger, config.ingest.concurrency, retry);
  const resumeIngestion = async (): Promise<number> => {
    const pending = await kbFiles.inProgress();
    await queue.enqueue(pending.map(jobOf));
    return pending.length;
  };
  // Redis back after an outage: queue what was accepted meanwhile and what a restart may have lost.
  if (role === 'api' && queue instanceof BullIngestQueue) {
    queue.onReconnect(() =>
      void resumeIngestion().then(
        (files) => logger.info({ files }, 'Redis is back: re-enqueued files in progress'),
        (error: unknown) => logger.warn({ err: error }, 'could not re-enqueue files in progress after Redis came back'),
      ),
    );
  }
  const reconciler = new IngestReconciler(kbFiles, queue, logger, {
    intervalMs: config.ingest.reconcileIntervalMs,
    graceMs: config.ingest.reconcileGraceMs,
    maxRequeues: config.ingest.reconcileMaxRequeues,
  });
  // Where jobs run: a server-mode API has no runner, and its workers reconcile for it.
  if (role === 'worker' || !config.redisUrl) reconciler.start();
  const defaultEmbeddingModel = defaultEmbeddingModelCheck(embeddings, logger);
  if (role === 'api') void defaultEmbeddingModel();
  const knowledgeBases = new KnowledgeBaseService(kbStore, kbFiles, fileStore, queue, chunkStore, embeddings, defaultEmbeddingModel, logger, clock);
  const files = new FileService(fileStore, blobs, knowledgeBases, config.limits.storageQuotaBytes);
  // Every process sweeps (API replicas and workers alike): claims in the database keep them apart.
  const expirySweeper = new ExpirySweeper(kbStore, fileStore, knowledgeBases, files, logger.child({ component: 'expiry-sweeper' }));
  if (config.expirySweepIntervalMs > 0) expirySweeper.start(config.expirySweepIntervalMs);

  const readiness: ReadinessCheck[] = [
    { name: 'database', check: async () => void (await db.query('SELECT 1')) },
    { name: 'vector_store', check: () => chunkStore.health() },
    { name: 'queue', check: () => queue.health() },
    ...modelRegistry.routes().map((route) => ({
      name: `model:${route.id}`,
      // A model is ready when at least one of its replicas answers.
      check: () => Promise.any(route.replicas.map((replica) => replica.ping(2_000))).then(() => undefined),
    })),
  ];

  const modelRouter = new ModelRouter(modelRegistry, metrics);
  // Server mode shares the buckets through Redis so that limits hold across API replicas.
  const rateLimiter: RateLimiter = config.redisUrl
    ? new RedisRateLimiter(config.redisUrl, logger.child({ component: 'rate-limiter' }))
    : new MemoryRateLimiter();
  const reranker = config.rerank
    ? createReranker(config.rerank, { modelsDir: config.modelsDir, cacheDir: path.join(config.dataDir, 'model-cache'), allowDownload: config.allowModelDownload, logger })
    : undefined;
  const retriever = new Retriever(knowledgeBases, chunkStore, embeddings, bm25, reranker && { model: reranker, topN: config.rerank?.top_n });

  return {
    config,
    logger,
    db,
    metrics,
    keys: new ApiKeyStore(db, config.authCacheTtlMs),
    rateLimiter,
    usage,
    modelRegistry,
    modelRouter,
    embeddings,
    blobs,
    chunkStore,
    queue,
    pipeline,
    files,
    expirySweeper,
    knowledgeBases,
    retriever,
    groundedChat: new GroundedChat({ retriever, models: modelRouter, registry: modelRegistry, tokenCounter, logger }),
    readiness,
    resumeIngestion,
    reconciler,
    async close() {
      await expirySweeper.stop();
      await reconciler.stop();
      await stagingSweeper?.stop();
      await queue.close();
      await documentWorkers.close();
      await usage.close();
      await rateLimiter.close();
      await Promise.allSettled([modelRegistry.close(), embeddings.close(), reranker?.close()]);
      await vectorStore.stop();
      await db.close();
    },
  };
}
