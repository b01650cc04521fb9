/**
 * One ingestion job: blob → parse → chunk → embed (dense) + BM25 (sparse) → Qdrant upsert,
 * with status and progress in SQL. Re-running a job is safe: point ids are deterministic, new
 * points are written before stale ones are deleted, and a job that finds its row deleted,
 * cancelled or re-attached stops and removes what it wrote.
 */
import type { Logger } from 'pino';
import type { Embedder } from '../embeddings/embedder.ts';
import type { EmbeddingModels } from '../embeddings/embedding-models.ts';
import { collectionOf, LEXICAL_ONLY } from '../knowledge/knowledge-base-service.ts';
import type { IngestJob, JobContext } from '../queue/ingest-queue.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { FileStore, StoredFile } from '../store/files.ts';
import type { KbFile, KbFileStore } from '../store/kb-files.ts';
import type { SearchableKnowledgeBase, KnowledgeBaseStore } from '../store/knowledge-bases.ts';
import type { Bm25Encoder } from '../vectors/bm25-encoder.ts';
import type { ChunkPoint, QdrantChunkStore } from '../vectors/qdrant-chunk-store.ts';
import { resolveChunking, type ChunkingOptions } from './chunker.ts';
import { IngestError, type Chunk } from './document.ts';

/** Parse and chunk a file (off the event loop: `DocumentWorkerPool.chunkFile`); `IngestError` when it cannot be ingested. */
export type ChunkFile = (bytes: Buffer, filename: string, chunking: ChunkingOptions, signal?: AbortSignal) => Promise<Chunk[]>;

export interface IngestPipelineDeps {
  kbs: KnowledgeBaseStore;
  kbFiles: KbFileStore;
  files: FileStore;
  blobs: BlobStore;
  chunkFile: ChunkFile;
  embeddings: EmbeddingModels;
  bm25: Bm25Encoder;
  chunkStore: QdrantChunkStore;
  logger: Logger;
  /** Chunks embedded and upserted per step; progress is saved after each. */
  batchSize?: number;
}

type Outcome = 'done' | 'superseded';

export class IngestPipeline {
  private readonly batchSize: number;

  constructor(private readonly deps: IngestPipelineDeps) {
    this.batchSize = deps.batchSize ?? 64;
  }

  /** The queue's handler. Throws only for transient failures, which the queue retries. */
  readonly handle = async (job: IngestJob, context: JobContext): Promise<void> => {
    // A row re-attached while we worked has a new generation: ingest again until we are current.
    for (let round = 0; round < 10; round += 1) {
      const row = await this.deps.kbFiles.byId(job.kbFileId);
      if (!row || row.status !== 'in_progress') return;
      if ((await this.ingest(row, context)) === 'done') return;
    }
  };

  private async ingest(row: KbFile, context: JobContext): Promise<Outcome> {
    const { kbs, kbFiles, logger } = this.deps;
    // The light lookup: counting the KB's files on every job slowed large ingests quadratically.
    const kb = await kbs.getSearchable(row.projectId, row.kbId);
    if (!kb) return 'done';
    const started = performance.now();
    try {
      const file = await this.deps.files.get(row.projectId, row.fileId);
      if (!file) throw new IngestError('invalid_file', 'The file was deleted before it could be ingested.');
      const chunks = await this.chunk(row, kb, file, context.signal);
      const outcome = await this.store(row, kb, file.filename, chunks, context.signal);
      if (outcome === 'done') {
        logger.info({ kbFileId: row.id, fileId: row.fileId, chunks: chunks.length, ms: Math.round(performance.now() - started) }, 'file ingested');
      }
      return outcome;
    } catch (error) {
      if (context.signal.aborted) throw error;
      if (error instanceof IngestError) {
        // A row re-attached or deleted meanwhile is not ours to fail: let the current generation decide.
        if (!(await kbFiles.fail(row.id, row.generation, { code: error.code, message: error.message }))) return this.abandon(row, kb);
        await this.removePoints(row, kb);
        return 'done';
      }
      if (context.isFinalAttempt) {
        logger.error({ err: error, kbFileId: row.id }, 'ingestion failed for good');
        // The cause stays in the server log: it may name internal hosts or paths.
        const message = `Ingestion failed after ${context.attempt} attempts (${(error as { code?: string }).code ?? 'internal error'}); the server log has the details.`;
        if (!(await kbFiles.fail(row.id, row.generation, { code: 'server_error', message }))) return this.abandon(row, kb);
        return 'done';
      }
      throw error;
    }
  }

  private async chunk(row: KbFile, kb: SearchableKnowledgeBase, file: StoredFile, signal: AbortSignal): Promise<Chunk[]> {
    const { blobs, chunkFile } = this.deps;
    const embedder = this.embedderOf(kb);
    const sizes = resolveChunking(row.chunkingStrategy, embedder ? await embedder.maxInputTokens() : undefined);
    const chunks = await chunkFile(await blobs.read(file.sha256), file.filename, sizes, signal);
    if (chunks.length === 0) throw new IngestError('invalid_file', 'The file contains no text to index.');
    return chunks;
  }

  private embedderOf(kb: SearchableKnowledgeBase): Embedder | undefined {
    if (kb.embeddingModel === LEXICAL_ONLY) return undefined;
    const embedder = this.deps.embeddings.get(kb.embeddingModel);
    if (!embedder) throw new Error(`The embedding model '${kb.embeddingModel}' of this knowledge base is not configured.`);
    return embedder;
  }

  private async store(row: KbFile, kb: SearchableKnowledgeBase, filename: string, chunks: Chunk[], signal: AbortSignal): Promise<Outcome> {
    const { kbFiles, chunkStore, bm25 } = this.deps;
    const embedder = this.embedderOf(kb);
    const collection = collectionOf(chunkStore, kb);
    await chunkStore.ensureCollection(collection, kb.embeddingDimensions);
    await chunkStore.ensureAttributeIndexes(collection, row.attributes);

    for (let start = 0; start < chunks.length; start += this.batchSize) {
      if (!(await kbFiles.isCurrent(row.id, row.generation))) return this.abandon(row, kb);
      signal.throwIfAborted();
      const batch = chunks.slice(start, start + this.batchSize);
      const dense = embedder ? (await embedder.embed(batch.map((chunk) => chunk.text), signal)).vectors : undefined;
      const points: ChunkPoint[] = batch.map((chunk, i) => ({
        id: chunkStore.pointId(row.kbId, row.fileId, chunk.index),
        dense: dense?.[i],
        sparse: bm25.encodeDocument(chunk.text),
        payload: {
          project_id: row.projectId,
          kb_id: row.kbId,
          file_id: row.fileId,
          filename,
          chunk_index: chunk.index,
          generation: row.generation,
          ready: false,
          text: chunk.text,
          page_start: chunk.pageStart,
          page_end: chunk.pageEnd,
          title: chunk.title,
          char_start: chunk.charStart,
          char_end: chunk.charEnd,
          attributes: row.attributes,
        },
      }));
      await chunkStore.upsert(collection, points);
      await kbFiles.setProgress(row.id, row.generation, Math.min(1, (start + batch.length) / chunks.length));
    }
    // All new points are in: publish them at once, then drop what an earlier generation left behind.
    await chunkStore.markReady(collection, { projectId: row.projectId, kbId: row.kbId, fileId: row.fileId, generation: row.generation });
    await chunkStore.deleteFile(collection, { projectId: row.projectId, kbId: row.kbId, fileId: row.fileId, keepGeneration: row.generation });
    const usageBytes = chunks.reduce((sum, chunk) => sum + Buffer.byteLength(chunk.text), 0);
    if (!(await kbFiles.complete(row.id, row.generation, chunks.length, usageBytes))) return this.abandon(row, kb);
    return 'done';
  }

  /** The row changed under us: decide what of this run's work may stay. */
  private async abandon(row: KbFile, kb: SearchableKnowledgeBase): Promise<Outcome> {
    const current = await this.deps.kbFiles.byId(row.id);
    // Deleted or cancelled: nothing of this file may stay indexed.
    if (!current || current.status === 'cancelled') {
      await this.removePoints(row, kb);
      return 'done';
    }
    // Another run finished this very generation (a duplicate job): its points are ours too.
    if (current.generation === row.generation) return 'done';
    // Re-attached: drop what this run wrote (the new run may already have cleaned up), then run the new generation if it is still pending.
    await this.deps.chunkStore.deleteFile(collectionOf(this.deps.chunkStore, kb), {
      projectId: row.projectId, kbId: row.kbId, fileId: row.fileId, onlyGeneration: row.generation,
    });
    return current.status === 'in_progress' ? 'superseded' : 'done';
  }

  private async removePoints(row: KbFile, kb: SearchableKnowledgeBase): Promise<void> {
    await this.deps.chunkStore.deleteFile(collectionOf(this.deps.chunkStore, kb), { projectId: row.projectId, kbId: row.kbId, fileId: row.fileId });
  }
}
