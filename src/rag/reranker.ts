/**
 * The optional rerank stage of retrieval: a cross-encoder (in-process) or a rerank server scores
 * each candidate chunk against the query. Off unless the model config file has a `rerank:` block.
 *
 * Scores are relevance probabilities in [0, 1] for every provider (local: sigmoid of the logit,
 * TEI: raw_scores false, Cohere-style servers: relevance_score), so one score threshold means
 * roughly the same thing whichever backend is configured.
 */
import { z } from 'zod';
import { LocalCrossEncoderReranker, type RerankerLogger } from './local-reranker.ts';
import { RemoteReranker } from './remote-reranker.ts';

// The error classes live next to the code that throws them (so these modules do not import each
// other in a cycle) and are re-exported here, where callers look for the port's vocabulary.
export { RerankModelUnavailableError, type RerankerLogger } from './local-reranker.ts';
export { RerankUpstreamError } from './remote-reranker.ts';

export interface Reranker {
  readonly id: string;
  /**
   * One relevance score per text, in input order; higher is more relevant. A text the backend
   * did not score (a server that applied `top_n`) gets -Infinity, so it sorts last.
   */
  rerank(query: string, texts: string[], signal?: AbortSignal): Promise<number[]>;
  close(): Promise<void>;
}

/** How many reranked candidates retrieval keeps; unset keeps them all. */
const topN = z.number().int().positive().optional();
/** A whole rerank call, connection included: reranking sits on the request path of search and chat. */
const timeoutMs = z.number().int().positive().default(10_000);

export const rerankConfigSchema = z.discriminatedUnion('provider', [
  z.object({
    provider: z.literal('local'),
    /** Hub id (`Xenova/ms-marco-MiniLM-L-6-v2`), a directory under CAIRN_MODELS_DIR, or an absolute directory. */
    source: z.string().min(1),
    dtype: z.enum(['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'bnb4', 'q4f16']).default('q8'),
    max_batch_size: z.number().int().positive().default(16),
    top_n: topN,
  }),
  z.object({
    /** Hugging Face text-embeddings-inference: POST {base_url}/rerank. */
    provider: z.literal('tei'),
    base_url: z.string().url(),
    api_key: z.string().min(1).optional(),
    timeout_ms: timeoutMs,
    top_n: topN,
  }),
  z.object({
    /** Cohere, Jina, vLLM, Infinity…: POST {base_url}/rerank with `documents`, answering `results`. */
    provider: z.literal('cohere'),
    base_url: z.string().url(),
    model: z.string().min(1),
    api_key: z.string().min(1).optional(),
    timeout_ms: timeoutMs,
    top_n: topN,
  }),
]);

export type RerankConfig = z.infer<typeof rerankConfigSchema>;
/** The block as written in the config file (defaults not yet applied). */
export type RerankConfigInput = z.input<typeof rerankConfigSchema>;

export interface RerankerSharedOptions {
  modelsDir?: string;
  cacheDir?: string;
  allowDownload: boolean;
  logger?: RerankerLogger;
}

/** Builds the configured reranker. Nothing is loaded or contacted until the first rerank call. */
export function createReranker(config: RerankConfig, shared: RerankerSharedOptions): Reranker {
  switch (config.provider) {
    case 'local':
      return new LocalCrossEncoderReranker({
        id: config.source,
        source: config.source,
        dtype: config.dtype,
        maxBatchSize: config.max_batch_size,
        modelsDir: shared.modelsDir,
        cacheDir: shared.cacheDir,
        allowDownload: shared.allowDownload,
        logger: shared.logger,
      });
    case 'tei':
      return new RemoteReranker({
        id: `tei@${new URL(config.base_url).host}`,
        api: 'tei',
        baseUrl: config.base_url,
        apiKey: config.api_key,
        timeoutMs: config.timeout_ms,
      });
    case 'cohere':
      return new RemoteReranker({
        id: config.model,
        api: 'cohere',
        baseUrl: config.base_url,
        model: config.model,
        apiKey: config.api_key,
        timeoutMs: config.timeout_ms,
        topN: config.top_n,
      });
  }
}
