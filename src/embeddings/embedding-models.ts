/**
 * The embedding models this process serves, by public id: the ones in the model config file
 * plus the default model (CAIRN_EMBEDDING_MODEL), which needs no config entry when it is a
 * local transformers.js model. Embedders load lazily, so building the registry is cheap.
 */
import { ConfigError, type EmbeddingModelConfig } from '../config.ts';
import type { Embedder } from './embedder.ts';
import { type EmbedderLogger, LocalEmbedder, type Pooling } from './local-embedder.ts';
import { RemoteEmbedder } from './remote-embedder.ts';
import { truncationPolicyOf, type TruncationPolicy } from './truncation.ts';

/** The value of CAIRN_EMBEDDING_MODEL (and of a KB's `embedding_model`) that means lexical search only. */
export const NO_EMBEDDING_MODEL = 'none';
const IMPLICIT_MAX_BATCH_SIZE = 32;

export interface EmbeddingModelsOptions {
  configs: EmbeddingModelConfig[];
  /** CAIRN_EMBEDDING_MODEL: a configured id, a hub id / directory under modelsDir, or "none". */
  defaultModelId: string;
  modelsDir?: string;
  cacheDir?: string;
  allowDownload: boolean;
  logger?: EmbedderLogger;
}

/**
 * BGE models are trained with CLS pooling, but the ONNX conversions on the hub (Xenova/bge-*)
 * ship without the sentence-transformers files that would say so. Files still win when present.
 */
function poolingKnownFor(source: string): Pooling | undefined {
  return /(^|\/)bge-[^/]*$/i.test(source) ? 'cls' : undefined;
}

export class EmbeddingModels {
  private readonly embedders = new Map<string, Embedder>();
  private readonly truncation = new Map<string, TruncationPolicy>();
  /** Undefined when the default is "none": new knowledge bases are lexical-only. */
  readonly defaultModelId: string | undefined;

  constructor(options: EmbeddingModelsOptions) {
    const { modelsDir, cacheDir, allowDownload, logger } = options;
    for (const config of options.configs) {
      if (config.id === NO_EMBEDDING_MODEL) {
        throw new ConfigError(`Model config: embedding model id "${NO_EMBEDDING_MODEL}" is reserved (it means lexical search only)`);
      }
      if (this.embedders.has(config.id)) throw new ConfigError(`Model config: embedding model "${config.id}" is listed twice`);
      this.embedders.set(config.id, createEmbedder(config, { modelsDir, cacheDir, allowDownload, logger }));
      this.truncation.set(config.id, truncationPolicyOf(config));
    }

    const defaultId = options.defaultModelId.trim();
    if (defaultId === NO_EMBEDDING_MODEL || defaultId === '') {
      this.defaultModelId = undefined;
      return;
    }
    this.defaultModelId = defaultId;
    if (!this.embedders.has(defaultId)) {
      const implicit: EmbeddingModelConfig = {
        id: defaultId,
        provider: 'local',
        source: defaultId,
        dtype: 'q8',
        max_batch_size: IMPLICIT_MAX_BATCH_SIZE,
      };
      this.embedders.set(defaultId, createEmbedder(implicit, { modelsDir, cacheDir, allowDownload, logger }));
    }
  }

  get(id: string): Embedder | undefined {
    return this.embedders.get(id);
  }

  /** Which `dimensions` a request may ask of this model besides its own (none unless its config says so). */
  truncationPolicy(id: string): TruncationPolicy {
    return this.truncation.get(id);
  }

  ids(): string[] {
    return [...this.embedders.keys()];
  }

  /** Why the model `id` cannot serve now (its weights failed to load), or undefined if it can or has not been tried. */
  unavailable(id: string): Error | undefined {
    return this.embedders.get(id)?.unavailable?.();
  }

  /** The default embedder, or undefined when the default is "none". */
  default(): Embedder | undefined {
    return this.defaultModelId === undefined ? undefined : this.embedders.get(this.defaultModelId);
  }

  async close(): Promise<void> {
    const results = await Promise.allSettled([...this.embedders.values()].map((embedder) => embedder.close()));
    const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure) throw failure.reason;
  }
}

function createEmbedder(
  config: EmbeddingModelConfig,
  shared: { modelsDir: string | undefined; cacheDir: string | undefined; allowDownload: boolean; logger: EmbedderLogger | undefined },
): Embedder {
  if (config.provider === 'openai') {
    return new RemoteEmbedder({
      id: config.id,
      baseUrl: config.base_url,
      model: config.model,
      apiKey: config.api_key,
      dimensions: config.dimensions,
      maxBatchSize: config.max_batch_size,
      maxConcurrency: config.max_concurrency,
    });
  }
  return new LocalEmbedder({
    id: config.id,
    source: config.source,
    dtype: config.dtype,
    pooling: config.pooling ?? poolingKnownFor(config.source),
    normalize: config.normalize,
    maxBatchSize: config.max_batch_size,
    modelsDir: shared.modelsDir,
    cacheDir: shared.cacheDir,
    allowDownload: shared.allowDownload,
    logger: shared.logger,
  });
}
