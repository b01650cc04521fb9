/**
 * Retrieval over one or more knowledge bases: encode the query once per embedding model
 * (BM25 sparse always, dense when the KB has a model), query each KB's collection in Qdrant
 * (hybrid prefetch + RRF inside Qdrant), then fuse the per-KB lists by reciprocal rank.
 * The search endpoint and grounded chat both call this.
 */
import type { EmbeddingModels } from '../embeddings/embedding-models.ts';
import type { PageBreak } from '../ingest/document.ts';
import { collectionOf, type KnowledgeBaseService, LEXICAL_ONLY } from '../knowledge/knowledge-base-service.ts';
import type { Attributes } from '../store/kb-files.ts';
import type { SearchableKnowledgeBase } from '../store/knowledge-bases.ts';
import type { Bm25Encoder } from '../vectors/bm25-encoder.ts';
import type { QdrantChunkStore, SparseVector } from '../vectors/qdrant-chunk-store.ts';
import { LRUCache } from 'lru-cache';
import { mergeChunks } from './merge-chunks.ts';
import type { Reranker } from './reranker.ts';
import type { OpenAIFilter } from '../vectors/qdrant-filters.ts';

export interface KnowledgeBaseQuery {
  id: string;
  filters?: OpenAIFilter;
  maxResults?: number;
  scoreThreshold?: number;
}

export interface RetrievalOptions {
  query: string;
  maxResults: number;
  scoreThreshold?: number;
}

export interface RetrievedChunk {
  chunkId: string;
  knowledgeBaseId: string;
  fileId: string;
  filename: string;
  /** Relevance in [0, 1]; see `relevance`. */
  score: number;
  text: string;
  pageStart?: number;
  pageEnd?: number;
  /** Where each page begins, in document offsets like charStart (see Chunk.pageBreaks). */
  pageBreaks?: PageBreak[];
  title?: string;
  chunkIndex: number;
  /** Character range in the file's text, used to stitch overlapping neighbours. */
  charStart: number;
  charEnd: number;
  attributes: Attributes;
}

const RRF_K = 60;

/**
 * Qdrant's raw scores differ by mode (BM25 sums are unbounded, RRF scores are tiny), so they are
 * mapped to [0, 1] the same way for every KB: a saturating curve for BM25 keeps weak lexical
 * matches low in absolute terms, and hybrid RRF is divided by its best possible value.
 */
function relevance(raw: number, lexicalOnly: boolean): number {
  if (lexicalOnly) return 1 - Math.exp(-raw / 8);
  return Math.min(1, raw / (2 / (1 + RRF_K)));
}

const CACHED_QUERIES = 1_000;

export class Retriever {
  /** Recent query encodings: chat users repeat and retry questions, and encoding is the costly part of a search. */
  private readonly sparseCache = new LRUCache<string, SparseVector>({ max: CACHED_QUERIES });
  private readonly denseCache = new LRUCache<string, Promise<number[]>>({ max: CACHED_QUERIES });

  constructor(
    private readonly knowledgeBases: KnowledgeBaseService,
    private readonly chunkStore: QdrantChunkStore,
    private readonly embeddings: EmbeddingModels,
    private readonly bm25: Bm25Encoder,
    private readonly reranker?: { model: Reranker; topN?: number },
  ) {}

  /** Resolves every KB in the caller's project first: an unknown or foreign id is a 404 before any search runs. */
  async resolve(projectId: string, queries: KnowledgeBaseQuery[]): Promise<SearchableKnowledgeBase[]> {
    return Promise.all(queries.map((query) => this.knowledgeBases.getSearchable(projectId, query.id)));
  }

  /** `resolved`: the knowledge bases of `queries`, when the caller has already looked them up with `resolve`. */
  async search(projectId: string, queries: KnowledgeBaseQuery[], options: RetrievalOptions, resolved?: SearchableKnowledgeBase[]): Promise<RetrievedChunk[]> {
    const kbs = resolved ?? (await this.resolve(projectId, queries));
    const sparse = this.sparseQuery(options.query);
    const denseFor = (model: string) => this.denseQuery(model, options.query);

    const perKb = await Promise.all(
      kbs.map(async (kb, i) => {
        const query = queries[i]!;
        const lexicalOnly = kb.embeddingModel === LEXICAL_ONLY;
        const limit = query.maxResults ?? options.maxResults;
        const hits = await this.chunkStore.search(collectionOf(this.chunkStore, kb), {
          projectId,
          kbId: kb.id,
          sparse,
          dense: lexicalOnly ? undefined : await denseFor(kb.embeddingModel),
          limit,
          filter: query.filters,
        });
        // With a reranker, the request-wide threshold applies to its scores instead (below).
        const threshold = query.scoreThreshold ?? (this.reranker ? 0 : options.scoreThreshold ?? 0);
        return hits
          .map((hit): RetrievedChunk => ({
            chunkId: String(hit.id),
            knowledgeBaseId: kb.id,
            fileId: hit.payload.file_id,
            filename: hit.payload.filename,
            score: relevance(hit.score, lexicalOnly),
            text: hit.payload.text,
            pageStart: hit.payload.page_start ?? undefined,
            pageEnd: hit.payload.page_end ?? undefined,
            pageBreaks: hit.payload.page_breaks ?? undefined,
            title: hit.payload.title ?? undefined,
            chunkIndex: hit.payload.chunk_index,
            charStart: hit.payload.char_start,
            charEnd: hit.payload.char_end,
            attributes: hit.payload.attributes ?? {},
          }))
          .filter((hit) => hit.score >= threshold);
      }),
    );
    await Promise.all(kbs.map((kb) => this.knowledgeBases.touch(kb.id)));
    if (!this.reranker) return mergeChunks(fuse(perKb, options.maxResults));
    const candidates = fuse(perKb, Math.min(50, Math.max(options.maxResults * 3, 20)));
    const reranked = await this.rerank(options.query, candidates);
    return mergeChunks(
      reranked.filter((chunk) => chunk.score >= (options.scoreThreshold ?? 0)).slice(0, Math.min(options.maxResults, this.reranker.topN ?? Infinity)),
    );
  }

  /** Reorders by the reranker's relevance (0..1), which then becomes the chunk's score. */
  private async rerank(query: string, candidates: RetrievedChunk[]): Promise<RetrievedChunk[]> {
    if (candidates.length === 0) return candidates;
    const scores = await this.reranker!.model.rerank(query, candidates.map((chunk) => chunk.text));
    return candidates
      .map((chunk, i) => ({ ...chunk, score: scores[i]! }))
      .sort((a, b) => b.score - a.score);
  }

  private sparseQuery(text: string): SparseVector {
    let vector = this.sparseCache.get(text);
    if (!vector) {
      vector = this.bm25.encodeQuery(text);
      this.sparseCache.set(text, vector);
    }
    return vector;
  }

  private denseQuery(model: string, text: string): Promise<number[]> {
    const key = `${model}\u0000${text}`;
    let vector = this.denseCache.get(key);
    if (!vector) {
      const embedder = this.embeddings.get(model);
      if (!embedder) throw new Error(`embedding model ${model} of a knowledge base is no longer configured`);
      vector = embedder.embed([text]).then((batch) => Array.from(batch.vectors[0]!));
      // A failed encoding must not stay cached.
      vector.catch(() => this.denseCache.delete(key));
      this.denseCache.set(key, vector);
    }
    return vector;
  }
}

/** Reciprocal-rank fusion across knowledge bases; a single list passes through in its order. */
export function fuse(lists: RetrievedChunk[][], limit: number): RetrievedChunk[] {
  if (lists.length === 1) return lists[0]!.slice(0, limit);
  const fused = new Map<string, { chunk: RetrievedChunk; score: number }>();
  for (const list of lists) {
    list.forEach((chunk, rank) => {
      const entry = fused.get(chunk.chunkId) ?? { chunk, score: 0 };
      entry.score += 1 / (RRF_K + rank + 1);
      fused.set(chunk.chunkId, entry);
    });
  }
  return [...fused.values()]
    .sort((a, b) => b.score - a.score || b.chunk.score - a.chunk.score)
    .slice(0, limit)
    .map((entry) => entry.chunk);
}
