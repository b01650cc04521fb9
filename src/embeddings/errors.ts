import { ServiceUnavailableError, UpstreamError } from '../errors.ts';

export type LocalModelKind = 'embedding' | 'rerank';
const KIND_NOUNS: Record<LocalModelKind, string> = { embedding: 'Embedding model', rerank: 'Rerank model' };

/** The weights of a local model are neither in CAIRN_MODELS_DIR nor downloadable (or fail to load). */
export class LocalModelUnavailableError extends ServiceUnavailableError {
  constructor(
    readonly kind: LocalModelKind,
    readonly modelId: string,
    readonly source: string,
    reason: string,
    options: { cause?: unknown } = {},
  ) {
    const named = modelId === source ? `"${modelId}"` : `"${modelId}" (source "${source}")`;
    super(
      `${KIND_NOUNS[kind]} ${named} is not available: ${reason}. ` +
        'Set CAIRN_MODELS_DIR to a directory that holds it, or allow downloads with CAIRN_ALLOW_MODEL_DOWNLOAD=true.',
      { code: `${kind}_model_unavailable`, cause: options.cause },
    );
  }
}

/** The weights of a local embedding model are neither in CAIRN_MODELS_DIR nor downloadable (or fail to load). */
export class EmbeddingModelUnavailableError extends LocalModelUnavailableError {
  constructor(modelId: string, source: string, reason: string, options: { cause?: unknown } = {}) {
    super('embedding', modelId, source, reason, options);
  }
}

/** An HTTP model server (remote embedder, rerank server) answered with an error or could not be reached. */
export class ModelUpstreamError extends UpstreamError {
  constructor(
    message: string,
    /** The upstream's HTTP status; undefined when no response arrived. */
    readonly upstreamStatus: number | undefined,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
}

/** An OpenAI-compatible /v1/embeddings upstream answered with an error or could not be reached. */
export class EmbeddingUpstreamError extends ModelUpstreamError {}
