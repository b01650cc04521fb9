import { ServiceUnavailableError, UpstreamError } from '../errors.ts';
import type { LoadFailure, LoadFailureCause } from './model-load-failure.ts';

export type LocalModelKind = 'embedding' | 'rerank';
const KIND_NOUNS: Record<LocalModelKind, string> = { embedding: 'Embedding model', rerank: 'Rerank model' };
/** What an operator can do instead of loading this kind of model in-process. */
const ALTERNATIVES: Record<LocalModelKind, string> = {
  embedding: 'configure a remote embedder (provider: openai) in the model config, or set CAIRN_EMBEDDING_MODEL=none for lexical-only knowledge bases',
  rerank: 'configure a remote reranker (provider: tei or cohere) as the model config\'s rerank, or remove it',
};

/** The fixes that apply to this cause: allowing downloads helps only when they are off. */
function fixesFor(kind: LocalModelKind, cause: LoadFailureCause): string {
  const alternatives = ALTERNATIVES[kind];
  switch (cause) {
    case 'network':
      return `Put its files in CAIRN_MODELS_DIR (downloaded on a machine with network access), ${alternatives}.`;
    case 'downloads_disabled':
      return `Set CAIRN_MODELS_DIR to a directory that holds it, allow downloads with CAIRN_ALLOW_MODEL_DOWNLOAD=true, ${alternatives}.`;
    case 'not_found':
      return `Check the model id (an ONNX export such as Xenova/bge-small-en-v1.5), put its files in CAIRN_MODELS_DIR, ${alternatives}.`;
    case 'other':
      return `Check its files in CAIRN_MODELS_DIR (or allow downloads with CAIRN_ALLOW_MODEL_DOWNLOAD=true), ${alternatives}.`;
  }
}

/** A local model's weights are not in CAIRN_MODELS_DIR and cannot be downloaded, or fail to load. */
export class LocalModelUnavailableError extends ServiceUnavailableError {
  readonly loadFailureCause: LoadFailureCause;

  constructor(
    readonly kind: LocalModelKind,
    readonly modelId: string,
    readonly source: string,
    failure: LoadFailure,
    options: { cause?: unknown } = {},
  ) {
    const named = modelId === source ? `"${modelId}"` : `"${modelId}" (source "${source}")`;
    super(`${KIND_NOUNS[kind]} ${named} is not available: ${failure.reason}. ${fixesFor(kind, failure.cause)}`, {
      code: `${kind}_model_unavailable`,
      cause: options.cause,
    });
    this.loadFailureCause = failure.cause;
  }
}

/** A local embedding model's weights are not in CAIRN_MODELS_DIR and cannot be downloaded, or fail to load. */
export class EmbeddingModelUnavailableError extends LocalModelUnavailableError {
  constructor(modelId: string, source: string, failure: LoadFailure, options: { cause?: unknown } = {}) {
    super('embedding', modelId, source, failure, options);
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
