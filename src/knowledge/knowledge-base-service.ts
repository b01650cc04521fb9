/**
 * Knowledge bases and the files attached to them: creation (pinning the embedding model),
 * attaching files (which enqueues ingestion), detaching and deleting (which removes chunks).
 */
import type { EmbeddingModels } from '../embeddings/embedding-models.ts';
import { EmbeddingModelUnavailableError } from '../embeddings/errors.ts';
import { InvalidRequestError, NotFoundError } from '../errors.ts';
import type { IngestJob, IngestQueue } from '../queue/ingest-queue.ts';
import type { FileStore } from '../store/files.ts';
import type { Attachment, Attributes, FileBatch, KbFile, KbFileStatus, KbFileStore } from '../store/kb-files.ts';
import type { ChunkingStrategy, ExpiredKnowledgeBase, KnowledgeBase, KnowledgeBaseStore, SearchableKnowledgeBase } from '../store/knowledge-bases.ts';
import type { Page, PageRequest } from '../store/pagination.ts';
import type { QdrantChunkStore } from '../vectors/qdrant-chunk-store.ts';
import { stitchSpans } from './file-text.ts';

export const LEXICAL_ONLY = 'none';

export interface NewKnowledgeBaseRequest {
  name?: string;
  description?: string | null;
  metadata?: Record<string, string>;
  embedding_model?: string;
  chunking_strategy?: ChunkingStrategy;
  file_ids?: string[];
  /** `expires_after.days` (anchor last_active_at). */
  expiresAfterDays?: number;
}

export interface AttachRequest {
  file_id: string;
  attributes?: Attributes;
  chunking_strategy?: ChunkingStrategy;
}

export function collectionOf(chunkStore: QdrantChunkStore, kb: Pick<KnowledgeBase, 'embeddingModel' | 'embeddingDimensions'>): string {
  return kb.embeddingModel === LEXICAL_ONLY
    ? chunkStore.collectionName(null, null)
    : chunkStore.collectionName(kb.embeddingModel, kb.embeddingDimensions);
}

/** The embedding model new knowledge bases get when they name none; `unavailable` when it fell back to lexical-only. */
export interface DefaultEmbeddingModel {
  id: string;
  /** The configured default that could not be loaded, and why. */
  unavailable?: { model: string; reason: string };
}

/** A created knowledge base, and why it is lexical-only when the default embedding model could not serve. */
export interface CreatedKnowledgeBase {
  kb: KnowledgeBase;
  embeddingFallback?: { model: string; reason: string };
}

export interface KnowledgeBaseServiceLogger {
  warn(obj: object, msg: string): void;
}

export const jobOf = (file: KbFile): IngestJob => ({ kbFileId: file.id, generation: file.generation });

export class KnowledgeBaseService {
  private readonly touchedAt = new Map<string, number>();
  private readonly now: () => number;

  constructor(
    private readonly kbs: KnowledgeBaseStore,
    private readonly kbFiles: KbFileStore,
    private readonly files: FileStore,
    private readonly queue: IngestQueue,
    private readonly chunkStore: QdrantChunkStore,
    private readonly embeddings: EmbeddingModels,
    /** The default embedding model's id when it can be loaded, else 'none' and why. */
    private readonly defaultEmbeddingModel: () => Promise<DefaultEmbeddingModel>,
    private readonly logger?: KnowledgeBaseServiceLogger,
    clock: () => Date = () => new Date(),
  ) {
    this.now = () => clock().getTime();
  }

  async create(projectId: string, request: NewKnowledgeBaseRequest): Promise<CreatedKnowledgeBase> {
    const fallback = request.embedding_model === undefined ? await this.defaultEmbeddingModel() : undefined;
    const embeddingModel = request.embedding_model ?? fallback!.id;
    const embeddingDimensions = await this.dimensionsOf(embeddingModel);
    const chunkingStrategy = request.chunking_strategy ?? { type: 'auto' };
    const existing = request.file_ids ? await this.requireFiles(projectId, request.file_ids, 'file_ids') : [];
    const kb = await this.kbs.create({
      projectId,
      name: request.name ?? '',
      description: request.description ?? null,
      metadata: request.metadata ?? {},
      embeddingModel,
      embeddingDimensions,
      chunkingStrategy,
      expiresAfterDays: request.expiresAfterDays ?? null,
    });
    const embeddingFallback = fallback?.unavailable;
    if (embeddingFallback) {
      this.logger?.warn(
        { kbId: kb.id, projectId, model: embeddingFallback.model, reason: embeddingFallback.reason },
        'knowledge base created lexical-only (BM25): the default embedding model is unavailable',
      );
    }
    if (existing.length > 0) {
      await this.attachAll(projectId, kb, existing.map((fileId) => ({ fileId, attributes: {}, chunkingStrategy })));
      return { kb: (await this.kbs.get(projectId, kb.id))!, embeddingFallback };
    }
    return { kb, embeddingFallback };
  }

  /** Pins the embedding model: it must load now, so that ingestion cannot fail later for lack of weights. */
  private async dimensionsOf(embeddingModel: string): Promise<number | null> {
    if (embeddingModel === LEXICAL_ONLY) return null;
    const embedder = this.embeddings.get(embeddingModel);
    if (!embedder) {
      throw new InvalidRequestError(
        `Unknown embedding model '${embeddingModel}'. Use one listed in the model config's \`embeddings\`, the default (${this.embeddings.ids().join(', ') || 'none configured'}), or "none" for a lexical-only knowledge base.`,
        { param: 'embedding_model' },
      );
    }
    try {
      return await embedder.dimensions();
    } catch (error) {
      if (error instanceof EmbeddingModelUnavailableError) {
        throw new InvalidRequestError(error.message, { param: 'embedding_model', code: 'embedding_model_unavailable' });
      }
      throw error;
    }
  }

  async get(projectId: string, id: string): Promise<KnowledgeBase> {
    const kb = await this.kbs.get(projectId, id);
    if (!kb) throw new NotFoundError(`No knowledge base found with id '${id}'.`, { param: 'knowledge_base_id' });
    return kb;
  }

  async find(projectId: string, idOrName: string): Promise<KnowledgeBase | undefined> {
    return this.kbs.find(projectId, idOrName);
  }

  /** Throws for an expired knowledge base: it is still listed (as OpenAI's), but cannot be searched. */
  async getSearchable(projectId: string, id: string): Promise<SearchableKnowledgeBase> {
    const kb = await this.kbs.getSearchable(projectId, id);
    if (!kb) throw new NotFoundError(`No knowledge base found with id '${id}'.`, { param: 'knowledge_base_id' });
    if (kb.expired) throw expiredError(id);
    return kb;
  }

  private async getActive(projectId: string, id: string): Promise<KnowledgeBase> {
    const kb = await this.get(projectId, id);
    if (kb.expired) throw expiredError(id);
    return kb;
  }

  /** Records use for `last_active_at`, at most once a minute per knowledge base: searches must not each write a row. */
  async touch(id: string): Promise<void> {
    const now = this.now();
    if ((this.touchedAt.get(id) ?? 0) > now - 60_000) return;
    this.touchedAt.set(id, now);
    if (this.touchedAt.size > 10_000) this.touchedAt.clear();
    await this.kbs.touch(id);
  }

  list(projectId: string, page: PageRequest): Promise<Page<KnowledgeBase>> {
    return this.kbs.list(projectId, page);
  }

  async update(
    projectId: string,
    id: string,
    changes: { name?: string; description?: string | null; metadata?: Record<string, string>; expiresAfterDays?: number | null },
  ): Promise<KnowledgeBase> {
    const kb = await this.kbs.update(projectId, id, changes);
    if (!kb) throw new NotFoundError(`No knowledge base found with id '${id}'.`, { param: 'knowledge_base_id' });
    return kb;
  }

  async delete(projectId: string, id: string): Promise<KnowledgeBase> {
    const kb = await this.get(projectId, id);
    const attached = await this.kbFiles.list(projectId, id, { limit: 100_000, order: 'asc' });
    await Promise.all(attached.data.map((file) => this.queue.cancel(jobOf(file))));
    await this.kbs.delete(projectId, id);
    // Rows first, points second: a job still running finds its row gone and removes what it wrote.
    await this.chunkStore.deleteKnowledgeBase(collectionOf(this.chunkStore, kb), { projectId, kbId: id });
    return kb;
  }

  async attach(projectId: string, kbId: string, request: AttachRequest): Promise<KbFile> {
    const kb = await this.getActive(projectId, kbId);
    await this.requireFiles(projectId, [request.file_id], 'file_id');
    const [attached] = await this.attachAll(projectId, kb, [
      { fileId: request.file_id, attributes: request.attributes ?? {}, chunkingStrategy: request.chunking_strategy ?? kb.chunkingStrategy },
    ]);
    return attached!;
  }

  private async attachAll(projectId: string, kb: KnowledgeBase, attachments: Attachment[]): Promise<KbFile[]> {
    const attached = await this.kbFiles.attach(projectId, kb.id, attachments);
    await this.queue.enqueue(attached.map(jobOf));
    await this.touch(kb.id);
    return attached;
  }

  /** `param` names the request field the files came from, for errors. A file listed twice is attached once (its last entry). */
  async createBatch(
    projectId: string,
    kbId: string,
    files: Array<{ fileId: string; attributes?: Attributes; chunkingStrategy?: ChunkingStrategy }>,
    param = 'file_ids',
  ): Promise<{ batch: FileBatch; files: KbFile[] }> {
    const kb = await this.getActive(projectId, kbId);
    const unique = [...new Map(files.map((file) => [file.fileId, file])).values()];
    await this.requireFiles(projectId, unique.map((file) => file.fileId), param);
    const result = await this.kbFiles.createBatch(
      projectId,
      kbId,
      unique.map((file) => ({ fileId: file.fileId, attributes: file.attributes ?? {}, chunkingStrategy: file.chunkingStrategy ?? kb.chunkingStrategy })),
    );
    await this.queue.enqueue(result.files.map(jobOf));
    await this.touch(kbId);
    return result;
  }

  async getBatch(projectId: string, kbId: string, batchId: string): Promise<FileBatch> {
    const batch = await this.kbFiles.getBatch(projectId, kbId, batchId);
    if (!batch) throw new NotFoundError(`No file batch found with id '${batchId}'.`, { param: 'batch_id' });
    return batch;
  }

  async cancelBatch(projectId: string, kbId: string, batchId: string): Promise<FileBatch> {
    const kb = await this.get(projectId, kbId);
    await this.getBatch(projectId, kbId, batchId);
    const cancelled = await this.kbFiles.cancelBatch(projectId, kbId, batchId);
    for (const file of cancelled) {
      await this.queue.cancel(jobOf(file));
      await this.chunkStore.deleteFile(collectionOf(this.chunkStore, kb), { projectId, kbId, fileId: file.fileId });
    }
    return this.getBatch(projectId, kbId, batchId);
  }

  async listFiles(projectId: string, kbId: string, page: PageRequest, options: { status?: KbFileStatus; batchId?: string }): Promise<Page<KbFile>> {
    await this.get(projectId, kbId);
    return this.kbFiles.list(projectId, kbId, page, options);
  }

  async getFile(projectId: string, kbId: string, fileId: string): Promise<KbFile> {
    await this.get(projectId, kbId);
    const file = await this.kbFiles.get(projectId, kbId, fileId);
    if (!file) throw new NotFoundError(`No file '${fileId}' in knowledge base '${kbId}'.`, { param: 'file_id' });
    return file;
  }

  /** Replaces the file's attributes in its row and on its points, so filters see them at once; nothing is re-embedded. */
  async updateFileAttributes(projectId: string, kbId: string, fileId: string, attributes: Attributes): Promise<KbFile> {
    const kb = await this.get(projectId, kbId);
    const file = await this.kbFiles.updateAttributes(projectId, kbId, fileId, attributes);
    if (!file) throw new NotFoundError(`No file '${fileId}' in knowledge base '${kbId}'.`, { param: 'file_id' });
    await this.chunkStore.setAttributes(collectionOf(this.chunkStore, kb), { projectId, kbId, fileId }, attributes);
    return file;
  }

  /** The parsed text of the file as indexed in this knowledge base (empty until ingestion completes). */
  async fileText(projectId: string, kbId: string, fileId: string): Promise<string[]> {
    const kb = await this.get(projectId, kbId);
    await this.getFile(projectId, kbId, fileId);
    return stitchSpans(await this.chunkStore.fileChunks(collectionOf(this.chunkStore, kb), { projectId, kbId, fileId }));
  }

  /** Removes the file from the knowledge base (not from storage) and its chunks; cancels its ingestion. */
  async detach(projectId: string, kbId: string, fileId: string): Promise<KbFile> {
    const kb = await this.get(projectId, kbId);
    const removed = await this.kbFiles.delete(projectId, kbId, fileId);
    if (!removed) throw new NotFoundError(`No file '${fileId}' in knowledge base '${kbId}'.`, { param: 'file_id' });
    await this.queue.cancel(jobOf(removed));
    await this.chunkStore.deleteFile(collectionOf(this.chunkStore, kb), { projectId, kbId, fileId });
    return removed;
  }

  /** The expiry sweeper's part: files detached and their jobs cancelled (rows first), then the points go. */
  async reclaimExpired(kb: ExpiredKnowledgeBase): Promise<void> {
    const removed = await this.kbFiles.deleteAllOf(kb.id);
    await Promise.all(removed.map((file) => this.queue.cancel(jobOf(file))));
    await this.chunkStore.deleteKnowledgeBase(collectionOf(this.chunkStore, kb), { projectId: kb.projectId, kbId: kb.id });
    await this.kbs.markReclaimed(kb.id);
  }

  async detachEverywhere(projectId: string, fileId: string): Promise<void> {
    for (const attachment of await this.kbFiles.ofFile(projectId, fileId)) {
      await this.detach(projectId, attachment.kbId, fileId);
    }
  }

  private async requireFiles(projectId: string, ids: string[], param: string): Promise<string[]> {
    const found = new Set((await this.files.getMany(projectId, ids)).map((file) => file.id));
    const missing = ids.find((id) => !found.has(id));
    if (missing) throw new NotFoundError(`No such File object: ${missing}`, { param });
    return ids;
  }
}

/** OpenAI keeps an expired vector store listed (status `expired`) but refuses to use it. */
function expiredError(id: string): InvalidRequestError {
  return new InvalidRequestError(`Knowledge base '${id}' has expired (expires_after); create a new one or delete it.`, {
    param: 'knowledge_base_id',
    code: 'expired',
  });
}
