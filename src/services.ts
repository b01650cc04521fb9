/**
 * The composition root: the only place that reads Config to choose and build adapters.
 * Everything else receives what it needs as arguments.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { ReadinessCheck } from './api/operations.ts';
import type { Config } from './config.ts';
import { EmbeddingModels } from './embeddings/embedding-models.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { ModelRegistry } from './models/model-registry.ts';
import { ModelRouter } from './models/model-router.ts';
import { ApiKeyStore } from './store/api-keys.ts';
import { openDatabase, type Database } from './store/database.ts';
import { migrate } from './store/migrations.ts';
import { UsageStore } from './store/usage.ts';

export interface Services {
  config: Config;
  logger: Logger;
  db: Database;
  metrics: Metrics;
  keys: ApiKeyStore;
  usage: UsageStore;
  modelRegistry: ModelRegistry;
  modelRouter: ModelRouter;
  embeddings: EmbeddingModels;
  readiness: ReadinessCheck[];
  close(): Promise<void>;
}

export async function createServices(config: Config, logger: Logger): Promise<Services> {
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

  const readiness: ReadinessCheck[] = [
    { name: 'database', check: async () => void (await db.query('SELECT 1')) },
    ...modelRegistry.routes().map((route) => ({
      name: `model:${route.id}`,
      // A model is ready when at least one of its replicas answers.
      check: () => Promise.any(route.replicas.map((replica) => replica.ping(2_000))).then(() => undefined),
    })),
  ];

  return {
    config,
    logger,
    db,
    metrics,
    keys: new ApiKeyStore(db),
    usage,
    modelRegistry,
    modelRouter: new ModelRouter(modelRegistry, metrics),
    embeddings,
    readiness,
    async close() {
      await usage.close();
      await Promise.allSettled([modelRegistry.close(), embeddings.close()]);
      await db.close();
    },
  };
}
