import { ServiceUnavailableError, UpstreamError } from '../errors.ts';

/** The weights of a local embedding model are neither in CAIRN_MODELS_DIR nor downloadable (or fail to load). */
export class EmbeddingModelUnavailableError extends ServiceUnavailableError {
  constructor(
    readonly modelId: string,
    readonly source: string,
    reason: string,
    options: { cause?: unknown } = {},
  ) {
    const named = modelId === source ? `"${modelId}"` : `"${modelId}" (source "${source}")`;
    super(
      `Embedding model ${named} is not available: ${reason}. ` +
        'Set CAIRN_MODELS_DIR to a directory that holds it, or allow downloads with CAIRN_ALLOW_MODEL_DOWNLOAD=true.',
      { code: 'embedding_model_unavailable', cause: options.cause },
    );
  }
}

/** An OpenAI-compatible /v1/embeddings upstream answered with an error or could not be reached. */
export class EmbeddingUpstreamError extends UpstreamError {
  constructor(
    message: string,
    /** The upstream's HTTP status; undefined when no response arrived. */
    readonly upstreamStatus: number | undefined,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
}
