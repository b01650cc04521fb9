/**
 * One ingestion job: blob → parse → chunk → embed (dense) + BM25 (sparse) → Qdrant upsert,
 * with status and progress in SQL. Re-running a job is safe: point ids are deterministic, new
 * points are written before stale ones are deleted, and a job that finds its row deleted,
 * cancelled or re-attached stops and removes what it wrote.
 *
 * Before each write (upsert, publish, status) a run checks that it still holds its job lock and
 * that the row still wants its generation: a run whose lock lapsed stops without writing, since
 * another run may own the file now. Progress is a checkpoint: a run redoing the same generation
 * resumes after the last batch an earlier run saved, once it has checked that batch is stored.
 */
import type { Logger } from 'pino';
import type { Embedder } from '../embeddings/embedder.ts';
import type { EmbeddingModels } from '../embeddings/embedding-models.ts';
import { collectionOf, LEXICAL_ONLY } from '../knowledge/knowledge-base-service.ts';
import { JobLockLostError, type IngestJob, type JobContext } from '../queue/ingest-queue.ts';
import { BlobMissingError, type BlobStore } from '../store/blob-store.ts';
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
      try {
        if ((await this.ingest(row, context)) === 'done') return;
      } catch (error) {
        if (!(error instanceof JobLockLostError)) throw error;
        this.deps.logger.warn({ kbFileId: row.id, generation: row.generation }, 'ingestion lost its job lock: stopped without further writes');
        return;
      }
    }
  };

  /** Throws JobLockLostError unless this run still holds its job; answers whether the row still wants this generation. */
  private async mayWrite(row: KbFile, context: JobContext): Promise<boolean> {
    await this.assertLock(row, context);
    return this.deps.kbFiles.isCurrent(row.id, row.generation);
  }

  private async assertLock(row: KbFile, context: JobContext): Promise<void> {
    if (!(await context.holdsLock())) throw new JobLockLostError(row.id);
  }

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
      const outcome = await this.store(row, kb, file.filename, chunks, context);
      if (outcome === 'done') {
        logger.info({ kbFileId: row.id, fileId: row.fileId, chunks: chunks.length, ms: Math.round(performance.now() - started) }, 'file ingested');
      }
      return outcome;
    } catch (error) {
      if (context.signal.aborted || error instanceof JobLockLostError) throw error;
      // Failing the file is a write too: only the run that holds the job may do it.
      await this.assertLock(row, context);
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
    const bytes = await blobs.read(file.blobKey).catch((error: unknown) => {
      // Permanent: retrying cannot bring bytes back (a deleted file's row is gone too, and abandon() handles that).
      if (error instanceof BlobMissingError) throw new IngestError('server_error', 'The bytes of this file are missing from the server\'s storage; upload it again.', { cause: error });
      throw error;
    });
    const embedder = this.embedderOf(kb);
    const sizes = resolveChunking(row.chunkingStrategy, embedder ? await embedder.maxInputTokens() : undefined);
    const chunks = await chunkFile(bytes, file.filename, sizes, signal);
    if (chunks.length === 0) throw new IngestError('invalid_file', 'The file contains no text to index.');
    return chunks;
  }

  private embedderOf(kb: SearchableKnowledgeBase): Embedder | undefined {
    if (kb.embeddingModel === LEXICAL_ONLY) return undefined;
    const embedder = this.deps.embeddings.get(kb.embeddingModel);
    if (!embedder) throw new Error(`The embedding model '${kb.embeddingModel}' of this knowledge base is not configured.`);
    return embedder;
  }

  private async store(row: KbFile, kb: SearchableKnowledgeBase, filename: string, chunks: Chunk[], context: JobContext): Promise<Outcome> {
    const { kbFiles, chunkStore, bm25, logger } = this.deps;
    const { signal } = context;
    const embedder = this.embedderOf(kb);
    const collection = collectionOf(chunkStore, kb);
    await chunkStore.ensureCollection(collection, kb.embeddingDimensions);
    await chunkStore.ensureAttributeIndexes(collection, row.attributes);

    const resumeAt = await this.checkpoint(row, collection, chunks);
    if (resumeAt > 0) logger.info({ kbFileId: row.id, resumeAt, chunks: chunks.length }, 'resuming ingestion after the chunks an earlier run stored');
    for (let start = resumeAt; start < chunks.length; start += this.batchSize) {
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
          page_breaks: chunk.pageBreaks,
          title: chunk.title,
          char_start: chunk.charStart,
          char_end: chunk.charEnd,
          attributes: row.attributes,
        },
      }));
      if (!(await this.mayWrite(row, context))) return this.abandon(row, kb);
      await chunkStore.upsert(collection, points);
      await kbFiles.setProgress(row.id, row.generation, Math.min(1, (start + batch.length) / chunks.length));
    }
    // All new points are in: publish them at once, then drop what an earlier generation left behind.
    if (!(await this.mayWrite(row, context))) return this.abandon(row, kb);
    // Attributes updated during ingestion (vectorStores.files.update) must not be overwritten by the ones this run started with.
    const attributes = (await kbFiles.byId(row.id))?.attributes ?? row.attributes;
    await chunkStore.markReady(collection, { projectId: row.projectId, kbId: row.kbId, fileId: row.fileId, generation: row.generation, attributes });
    await chunkStore.deleteFile(collection, { projectId: row.projectId, kbId: row.kbId, fileId: row.fileId, keepGeneration: row.generation });
    const usageBytes = chunks.reduce((sum, chunk) => sum + Buffer.byteLength(chunk.text), 0);
    await this.assertLock(row, context);
    if (!(await kbFiles.complete(row.id, row.generation, chunks.length, usageBytes))) return this.abandon(row, kb);
    return 'done';
  }

  /**
   * Where a redone run of this generation may start: after the chunks an earlier run saved as
   * progress, provided the last of them is stored with this generation and the same text (the
   * chunking is deterministic for one generation, but a changed embedder could change its sizes).
   * Anything else starts from 0, which is always correct, only slower.
   */
  private async checkpoint(row: KbFile, collection: string, chunks: Chunk[]): Promise<number> {
    // progress is saved as (chunks stored) / (chunks); a float4 keeps that exact to well past a million chunks.
    const saved = Math.min(chunks.length, Math.round(row.progress * chunks.length));
    if (saved <= 0) return 0;
    const last = chunks[saved - 1]!;
    const stored = await this.deps.chunkStore.payload(collection, this.deps.chunkStore.pointId(row.kbId, row.fileId, last.index));
    return stored?.generation === row.generation && stored.chunk_index === last.index && stored.text === last.text ? saved : 0;
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
