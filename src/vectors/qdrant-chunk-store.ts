/**
 * Chunks of knowledge-base files in Qdrant: one collection per embedding model, every point
 * tagged with its project and knowledge base, hybrid (dense + BM25 sparse, RRF) retrieval.
 */
import { QdrantClient, type Schemas } from '@qdrant/js-client-rest';
import { v5 as uuidv5 } from 'uuid';
import { ServiceUnavailableError } from '../errors.ts';
import type { PageBreak } from '../ingest/document.ts';
import { describeQdrantError, isUnreachable, retryOnStaleConnection, statusOf } from './qdrant-errors.ts';
import type { SparseVector } from './bm25-encoder.ts';
import {
  attributePath, matchKeyword, scopeConditions, translateFilter, type AttributeValue, type OpenAIFilter, type QdrantFilter,
} from './qdrant-filters.ts';

/** The BM25 encoder's output, stored and searched as Qdrant's sparse vector. */
export type { SparseVector };

export interface ChunkPayload {
  project_id: string;
  kb_id: string;
  file_id: string;
  filename: string;
  chunk_index: number;
  /** Which ingestion run wrote the point; re-ingestion deletes the points of older generations. */
  generation: string;
  /** False until the whole file is stored: searches see only completed files, never half of one. */
  ready: boolean;
  text: string;
  page_start?: number;
  page_end?: number;
  /** Where each page of the chunk begins (document offsets); absent on chunks stored before it was added. */
  page_breaks?: PageBreak[];
  title?: string;
  char_start: number;
  char_end: number;
  attributes: Record<string, AttributeValue>;
}

export type ChunkPoint = { id: string; dense?: number[] | Float32Array; sparse: SparseVector; payload: ChunkPayload };

export interface ChunkSearch {
  projectId: string;
  kbId: string;
  sparse: SparseVector;
  /** Present when the knowledge base has an embedding model: the search is then hybrid. */
  dense?: number[] | Float32Array;
  limit: number;
  filter?: OpenAIFilter;
  /** Candidates each of dense and sparse contributes to the fusion; default max(4 × limit, 50). */
  prefetchLimit?: number;
}

export type ChunkSearchHit = { id: string; score: number; payload: ChunkPayload };

export type QdrantChunkStoreOptions = { url: string; apiKey?: string; timeoutMs?: number };

/** Fixed forever: point ids derived from it must stay stable across releases. */
export const POINT_ID_NAMESPACE = '071797fa-1607-4ff4-a42d-bfbaa97ea5ab';
export const LEXICAL_COLLECTION = 'cairn_lexical';
/** Attribute keys get payload indexes up to this many per collection; filters on the rest still work, unindexed. */
const MAX_ATTRIBUTE_INDEXES = 64;

/** `cairn_<model slug>_<dimensions>`, or `cairn_lexical` for knowledge bases without an embedding model. */
export function collectionName(embeddingModel: string | null, dimensions: number | null): string {
  if (embeddingModel === null) return LEXICAL_COLLECTION;
  if (dimensions === null || !Number.isInteger(dimensions) || dimensions <= 0) {
    throw new Error(`Embedding model ${embeddingModel} needs a positive integer dimension for its collection`);
  }
  const slug = embeddingModel.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 120);
  // Replacing characters can map two model ids to one slug; a digest of the id keeps them apart.
  const suffix = slug === embeddingModel ? '' : `-${uuidv5(embeddingModel, POINT_ID_NAMESPACE).slice(0, 8)}`;
  return `cairn_${slug}${suffix}_${dimensions}`;
}

/** Deterministic, so re-running an ingestion job overwrites its points instead of duplicating them. */
export function pointId(kbId: string, fileId: string, chunkIndex: number): string {
  return uuidv5(`${kbId}/${fileId}/${chunkIndex}`, POINT_ID_NAMESPACE);
}

const CORE_INDEXES: Array<[string, Schemas['PayloadFieldSchema']]> = [
  // is_tenant co-locates each project's points on disk, so a project's searches read only its own data.
  ['project_id', { type: 'keyword', is_tenant: true }],
  ['kb_id', 'keyword'],
  ['file_id', 'keyword'],
  ['generation', 'keyword'],
  ['ready', 'bool'],
];

export class QdrantChunkStore {
  private readonly client: QdrantClient;
  private readonly url: string;
  private readonly ensured = new Map<string, Promise<void>>();
  private readonly indexedAttributes = new Map<string, Set<string>>();

  constructor(options: QdrantChunkStoreOptions) {
    const url = new URL(options.url);
    const prefix = url.pathname.replace(/\/+$/, '');
    this.url = `${url.protocol}//${url.host}${prefix}`;
    this.client = new QdrantClient({
      // The client ignores a path in `url` (a reverse proxy's prefix): it takes it as `prefix` only.
      url: `${url.protocol}//${url.host}`,
      prefix,
      // The client would otherwise use 6333 for a URL without a port; a URL means its scheme's default port.
      port: url.port === '' ? null : Number(url.port),
      // As a header, not `apiKey`: the client console.warns about keys over plain http (normal inside a compose network).
      // Qdrant gzips even tiny replies when asked, and fetch asks by default: decompressing cost more CPU than the bytes saved on a LAN.
      headers: { 'accept-encoding': 'identity', ...(options.apiKey ? { 'api-key': options.apiKey } : {}) },
      timeout: options.timeoutMs ?? 60_000,
      // The version check runs un-awaited in the constructor and console.warns; /readyz reports reachability instead.
      checkCompatibility: false,
    });
  }

  collectionName(embeddingModel: string | null, dimensions: number | null): string {
    return collectionName(embeddingModel, dimensions);
  }

  pointId(kbId: string, fileId: string, chunkIndex: number): string {
    return pointId(kbId, fileId, chunkIndex);
  }

  /** Creates the collection and its core payload indexes unless they exist; once per process per collection. */
  ensureCollection(name: string, dimensions: number | null): Promise<void> {
    let pending = this.ensured.get(name);
    if (pending === undefined) {
      pending = this.call('create a collection', name, () => this.createCollection(name, dimensions));
      this.ensured.set(name, pending);
      const attempt = pending;
      attempt.catch(() => {
        if (this.ensured.get(name) === attempt) this.ensured.delete(name);
      });
    }
    return pending;
  }

  private async createCollection(name: string, dimensions: number | null): Promise<void> {
    if (!(await this.client.collectionExists(name)).exists) {
      try {
        await this.client.createCollection(name, {
          vectors: dimensions === null ? {} : { dense: { size: dimensions, distance: 'Cosine' } },
          sparse_vectors: { bm25: { modifier: 'idf' } },
          // Qdrant's multitenancy layout: HNSW graphs per tenant (payload_m) instead of one global graph
          // (m: 0), since every search is filtered to one project.
          hnsw_config: { m: 0, payload_m: 16 },
        });
      } catch (error) {
        // Another process created it between our check and our create.
        if (statusOf(error) !== 409) throw error;
      }
    }
    // Also when it existed: the process that created it may have died before indexing.
    for (const [field, schema] of CORE_INDEXES) {
      await this.client.createPayloadIndex(name, { field_name: field, field_schema: schema, wait: true });
    }
  }

  /** Payload indexes for filterable attributes (keyword, float or bool from the value), once per key. */
  async ensureAttributeIndexes(name: string, attributes: Record<string, AttributeValue>): Promise<void> {
    const known = this.indexedAttributes.get(name) ?? new Set<string>();
    this.indexedAttributes.set(name, known);
    const missing = Object.keys(attributes).filter((key) => !known.has(key));
    if (missing.length === 0) return;
    await this.call('index attributes', name, async () => {
      const schema = (await this.client.getCollection(name)).payload_schema;
      let indexed = Object.keys(schema).filter((path) => path.startsWith('attributes.')).length;
      for (const key of missing) {
        const path = attributePath(key);
        // A key indexed with another type stays as it is: re-creating would flip it at every file.
        // Keys with `"` or `\` have no Qdrant path (filters reject them too).
        if (!(path in schema) && indexed < MAX_ATTRIBUTE_INDEXES && !/["\\]/.test(key)) {
          const value = attributes[key];
          const type = typeof value === 'number' ? 'float' : typeof value === 'boolean' ? 'bool' : 'keyword';
          await this.client.createPayloadIndex(name, { field_name: path, field_schema: type, wait: true });
          indexed++;
        }
        known.add(key);
      }
    });
  }

  /**
   * Writes points; a point its own run already published is never overwritten (Qdrant's conditional
   * upsert): the late write of a run that lost its job (a request in flight when the lock went, found
   * by bench:chaos) must not turn a completed file's points back to unpublished. Another generation's
   * points (re-ingestion, same ids) are overwritten as usual.
   */
  async upsert(collection: string, points: ChunkPoint[], { batchSize = 256 }: { batchSize?: number } = {}): Promise<void> {
    for (let start = 0; start < points.length; start += batchSize) {
      const batch = points.slice(start, start + batchSize).map((point) => ({
        id: point.id,
        vector: { ...(point.dense ? { dense: Array.from(point.dense) } : {}), bm25: point.sparse },
        payload: point.payload as unknown as Record<string, unknown>,
      }));
      const update_filter = { must_not: publishedRuns(points.slice(start, start + batchSize)) };
      await this.call('store chunks', collection, () => this.client.upsert(collection, { wait: true, points: batch, update_filter }));
    }
  }

  /** One point's payload, or undefined when it is not stored. */
  async payload(collection: string, id: string): Promise<ChunkPayload | undefined> {
    const points = await this.call('read a chunk', collection, () => this.client.retrieve(collection, { ids: [id], with_payload: true, with_vector: false }), () => []);
    return points[0]?.payload as unknown as ChunkPayload | undefined;
  }

  /**
   * Makes one ingestion run's points searchable, all at once, when the file is completely stored;
   * `attributes` (the row's at that moment) replace those written at the start, in case they were updated meanwhile.
   */
  async markReady(
    collection: string,
    file: { projectId: string; kbId: string; fileId: string; generation: string; attributes?: Record<string, AttributeValue> },
  ): Promise<void> {
    const filter: QdrantFilter = {
      must: [...scopeConditions(file.projectId, file.kbId), matchKeyword('file_id', file.fileId), matchKeyword('generation', file.generation)],
    };
    const payload = { ready: true, ...(file.attributes ? { attributes: file.attributes } : {}) };
    await this.call('publish file chunks', collection, () => this.client.setPayload(collection, { payload, filter, wait: true }));
  }

  /** Replaces a file's attributes on every point of it (set_payload replaces the whole `attributes` key): no re-embedding. */
  async setAttributes(collection: string, file: { projectId: string; kbId: string; fileId: string }, attributes: Record<string, AttributeValue>): Promise<void> {
    await this.ensureAttributeIndexes(collection, attributes);
    const filter: QdrantFilter = { must: [...scopeConditions(file.projectId, file.kbId), matchKeyword('file_id', file.fileId)] };
    await this.call('update attributes', collection, () => this.client.setPayload(collection, { payload: { attributes }, filter, wait: true }), () => undefined);
  }

  /** The searchable chunks of a file, in document order. */
  async fileChunks(collection: string, file: { projectId: string; kbId: string; fileId: string }): Promise<ChunkPayload[]> {
    const filter: QdrantFilter = {
      must: [...scopeConditions(file.projectId, file.kbId), matchKeyword('file_id', file.fileId), { key: 'ready', match: { value: true } }],
    };
    const chunks: ChunkPayload[] = [];
    let offset: Schemas['ExtendedPointId'] | undefined;
    do {
      const page = await this.call(
        'read file chunks', collection,
        () => this.client.scroll(collection, { filter, limit: 256, offset, with_payload: true, with_vector: false }),
        () => ({ points: [], next_page_offset: undefined }),
      );
      for (const point of page.points) chunks.push(point.payload as unknown as ChunkPayload);
      offset = (page.next_page_offset ?? undefined) as Schemas['ExtendedPointId'] | undefined;
    } while (offset !== undefined);
    return chunks.sort((a, b) => a.chunk_index - b.chunk_index);
  }

  /**
   * Deletes a file's points; with keepGeneration, all but that ingestion run's; with
   * onlyGeneration, just that run's.
   */
  async deleteFile(
    collection: string,
    file: { projectId: string; kbId: string; fileId: string; keepGeneration?: string; onlyGeneration?: string },
  ): Promise<void> {
    const filter: QdrantFilter = { must: [...scopeConditions(file.projectId, file.kbId), matchKeyword('file_id', file.fileId)] };
    if (file.keepGeneration !== undefined) filter.must_not = [matchKeyword('generation', file.keepGeneration)];
    if (file.onlyGeneration !== undefined) (filter.must as Schemas['Condition'][]).push(matchKeyword('generation', file.onlyGeneration));
    await this.call('delete file chunks', collection, () => this.client.delete(collection, { wait: true, filter }), () => undefined);
  }

  async deleteKnowledgeBase(collection: string, kb: { projectId: string; kbId: string }): Promise<void> {
    const filter: QdrantFilter = { must: scopeConditions(kb.projectId, kb.kbId) };
    await this.call('delete knowledge base chunks', collection, () => this.client.delete(collection, { wait: true, filter }), () => undefined);
  }

  async count(collection: string, where: { projectId: string; kbId: string; fileId?: string }): Promise<number> {
    const must = scopeConditions(where.projectId, where.kbId);
    if (where.fileId !== undefined) must.push(matchKeyword('file_id', where.fileId));
    const result = await this.call('count chunks', collection, () => this.client.count(collection, { filter: { must }, exact: true }), () => ({ count: 0 }));
    return result.count;
  }

  /** Hybrid (RRF over dense and BM25 candidates) when `dense` is given, else BM25 alone. */
  async search(collection: string, request: ChunkSearch): Promise<ChunkSearchHit[]> {
    const filter: QdrantFilter = { must: [...scopeConditions(request.projectId, request.kbId), { key: 'ready', match: { value: true } }] };
    if (request.filter) (filter.must as Schemas['Condition'][]).push(translateFilter(request.filter));
    const hasTerms = request.sparse.indices.length > 0;
    let query: Parameters<QdrantClient['query']>[1];
    if (request.dense) {
      const candidates = request.prefetchLimit ?? Math.max(request.limit * 4, 50);
      // The filter sits in each prefetch: that is where candidates are chosen, and fusion only reorders them.
      const prefetch: Schemas['Prefetch'][] = [{ query: Array.from(request.dense), using: 'dense', filter, limit: candidates }];
      // A query of stop words only has no terms; a one-prefetch fusion keeps scores on the RRF scale.
      if (hasTerms) prefetch.push({ query: request.sparse, using: 'bm25', filter, limit: candidates });
      query = { prefetch, query: { fusion: 'rrf' }, limit: request.limit, with_payload: true };
    } else {
      if (!hasTerms) return [];
      query = { query: request.sparse, using: 'bm25', filter, limit: request.limit, with_payload: true };
    }
    const response = await this.call('search', collection, () => this.client.query(collection, query), () => ({ points: [] }));
    return response.points.map((point) => ({ id: String(point.id), score: point.score, payload: point.payload as unknown as ChunkPayload }));
  }

  /** Throws ServiceUnavailableError unless Qdrant is ready and accepts our API key. */
  async health(): Promise<void> {
    await this.call('readiness check', null, () => this.client.api().readyz({}));
    await this.call('readiness check', null, () => this.client.getCollections());
  }

  /**
   * Every Qdrant call goes through here so an unreachable or failing Qdrant surfaces as a 503
   * naming the vector store, and a missing collection (a KB with no files yet) as `ifMissing`.
   */
  private async call<T>(operation: string, collection: string | null, run: () => Promise<T>, ifMissing?: () => T): Promise<T> {
    try {
      return await retryOnStaleConnection(run);
    } catch (error) {
      const status = statusOf(error);
      if (status === 404 && collection !== null) {
        // Deleted behind our back: the next ensureCollection must create it again.
        this.ensured.delete(collection);
        this.indexedAttributes.delete(collection);
        if (ifMissing) return ifMissing();
      }
      const detail = describeQdrantError(error);
      if (status === undefined ? isUnreachable(error) : status >= 500 || status === 401 || status === 403 || status === 429) {
        const retryAfter = (error as { retry_after?: unknown }).retry_after;
        const headers: Record<string, string> = typeof retryAfter === 'number' ? { 'retry-after': String(retryAfter) } : {};
        // The message reaches clients: it names the component, not its internal address.
        throw new ServiceUnavailableError(`The vector store (Qdrant) is unavailable: ${detail}`, { cause: error, headers });
      }
      throw new Error(`Qdrant could not ${operation}${collection ? ` in ${collection}` : ''}: ${detail}`, { cause: error });
    }
  }
}

/** Conditions matching points already published by the runs (generations) writing this batch. */
function publishedRuns(points: ChunkPoint[]): QdrantFilter[] {
  const generations = [...new Set(points.map((point) => point.payload.generation))];
  return generations.map((generation) => ({ must: [{ key: 'ready', match: { value: true } }, matchKeyword('generation', generation)] }));
}
