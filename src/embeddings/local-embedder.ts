/**
 * Embeddings computed in-process with transformers.js (ONNX Runtime, CPU). The model is loaded
 * on first use from CAIRN_MODELS_DIR or, when allowed, downloaded from the Hugging Face hub.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { AutoModel, AutoTokenizer, mean_pooling } from '@huggingface/transformers';
import type { PreTrainedModel, PreTrainedTokenizer, Tensor } from '@huggingface/transformers';
import type { EmbeddingModelConfig } from '../config.ts';
import type { Embedder, EmbeddingBatch } from './embedder.ts';
import { EmbeddingModelUnavailableError } from './errors.ts';
import { classifyLoadFailure } from './model-load-failure.ts';
import { LocalModelHost, maxInputTokensOf, plausibleSize, type ProgressCallback } from './local-model-host.ts';

export type LocalDtype = Extract<EmbeddingModelConfig, { provider: 'local' }>['dtype'];
export type Pooling = 'mean' | 'cls';

/** The subset of pino's logger the embedders use. */
export interface EmbedderLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface LocalEmbedderOptions {
  id: string;
  /** Hub id (`Xenova/bge-small-en-v1.5`), a directory name under modelsDir, or an absolute directory. */
  source: string;
  dtype: LocalDtype;
  pooling?: Pooling;
  normalize?: boolean;
  maxBatchSize: number;
  modelsDir?: string;
  /** Where downloaded weights are kept (the library's default is inside node_modules, which `npm ci` wipes). */
  cacheDir?: string;
  allowDownload: boolean;
  logger?: EmbedderLogger;
}

interface LoadedModel {
  tokenizer: PreTrainedTokenizer;
  model: PreTrainedModel;
  pooling: Pooling;
  normalize: boolean;
  maxInputTokens: number;
  hiddenSize: number | undefined;
}

async function readJsonIfExists(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as unknown;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** Pooling and normalisation as a sentence-transformers export declares them (modules.json, 1_Pooling/config.json). */
async function readSentenceTransformersSettings(modelDir: string): Promise<{ pooling?: Pooling; normalize?: boolean }> {
  const modules = await readJsonIfExists(path.join(modelDir, 'modules.json'));
  const moduleList = Array.isArray(modules) ? (modules as Array<{ type?: unknown; path?: unknown }>) : undefined;
  const poolingModule = moduleList?.find((module) => module.type === 'sentence_transformers.models.Pooling');
  const poolingDir = typeof poolingModule?.path === 'string' && poolingModule.path ? poolingModule.path : '1_Pooling';
  const poolingConfig = (await readJsonIfExists(path.join(modelDir, poolingDir, 'config.json'))) as
    | Record<string, unknown>
    | undefined;

  let pooling: Pooling | undefined;
  if (poolingConfig?.pooling_mode_cls_token === true) pooling = 'cls';
  else if (poolingConfig?.pooling_mode_mean_tokens === true) pooling = 'mean';
  const normalize = moduleList?.some((module) => module.type === 'sentence_transformers.models.Normalize');
  return { pooling, normalize };
}

export class LocalEmbedder implements Embedder {
  readonly id: string;
  private readonly host: LocalModelHost<LoadedModel>;
  private learnedDimensions: number | undefined;

  constructor(private readonly options: LocalEmbedderOptions) {
    if (!Number.isInteger(options.maxBatchSize) || options.maxBatchSize < 1) {
      throw new RangeError(`Embedding model ${options.id}: maxBatchSize must be a positive integer`);
    }
    this.id = options.id;
    const { id, source, modelsDir, cacheDir, allowDownload, logger } = options;
    this.host = new LocalModelHost({ id, source, modelsDir, cacheDir, allowDownload, logger, label: 'embedding model' }, (progress) =>
      this.loadModel(progress),
    );
  }

  async dimensions(): Promise<number> {
    const loaded = await this.host.load();
    this.learnedDimensions ??= loaded.hiddenSize ?? (await this.embed(['dimension probe'])).vectors[0]?.length;
    if (!this.learnedDimensions) throw new Error(`Embedding model ${this.id} returned no vector`);
    return this.learnedDimensions;
  }

  async maxInputTokens(): Promise<number> {
    return (await this.host.load()).maxInputTokens;
  }

  async embed(texts: string[], signal?: AbortSignal): Promise<EmbeddingBatch> {
    if (this.host.closed) throw new Error(`Embedding model ${this.id} is closed`);
    signal?.throwIfAborted();
    if (texts.length === 0) return { vectors: [], promptTokens: 0 };
    const loaded = await this.host.load();
    return this.host.serially(async () => {
      if (this.host.closed) throw new Error(`Embedding model ${this.id} is closed`);
      const vectors: Float32Array[] = [];
      let promptTokens = 0;
      for (let start = 0; start < texts.length; start += this.options.maxBatchSize) {
        signal?.throwIfAborted();
        const batch = await this.embedBatch(loaded, texts.slice(start, start + this.options.maxBatchSize));
        vectors.push(...batch.vectors);
        promptTokens += batch.promptTokens;
      }
      return { vectors, promptTokens };
    });
  }

  unavailable(): Error | undefined {
    return this.host.failure;
  }

  /** Waits for running batches, then disposes the session. */
  close(): Promise<void> {
    return this.host.close();
  }

  /** Runs under the process-wide load lock, with the library's `env` already set for this model's files. */
  private async loadModel(progress_callback: ProgressCallback): Promise<LoadedModel> {
    const { id, source, dtype, modelsDir, logger } = this.options;
    const started = performance.now();
    // Only a local directory is read for sentence-transformers files: transformers.js does not
    // export its hub file helper, and the hub's ONNX conversions rarely ship these files anyway.
    const modelDir = path.isAbsolute(source) ? source : modelsDir ? path.join(modelsDir, source) : undefined;
    let declared: { pooling?: Pooling; normalize?: boolean };
    let tokenizer: PreTrainedTokenizer;
    let model: PreTrainedModel;
    try {
      declared = modelDir ? await readSentenceTransformersSettings(modelDir) : {};
      tokenizer = await AutoTokenizer.from_pretrained(source, { progress_callback });
      model = await AutoModel.from_pretrained(source, { dtype, progress_callback });
    } catch (error) {
      throw new EmbeddingModelUnavailableError(id, source, classifyLoadFailure(error, { modelsDir }), { cause: error });
    }

    const pooling = declared.pooling ?? this.options.pooling ?? 'mean';
    const normalize = declared.normalize ?? this.options.normalize ?? true;
    for (const [setting, fromModel, configured] of [
      ['pooling', declared.pooling, this.options.pooling],
      ['normalize', declared.normalize, this.options.normalize],
    ] as const) {
      if (fromModel !== undefined && configured !== undefined && fromModel !== configured) {
        logger?.warn({ model: id, setting, fromModel, configured }, 'embedding model files override the configured setting');
      }
    }

    const maxInputTokens = maxInputTokensOf(tokenizer, model);
    const hiddenSize = plausibleSize((model.config as unknown as Record<string, unknown>).hidden_size);

    logger?.info(
      { model: id, source, dtype, pooling, normalize, dimensions: hiddenSize, maxInputTokens, ms: Math.round(performance.now() - started) },
      'embedding model loaded',
    );
    return { tokenizer, model, pooling, normalize, maxInputTokens, hiddenSize };
  }

  private async embedBatch(loaded: LoadedModel, texts: string[]): Promise<EmbeddingBatch> {
    // An explicit max_length: tokenizers whose model_max_length means "unlimited" would not truncate.
    const inputs = loaded.tokenizer(texts, { padding: true, truncation: true, max_length: loaded.maxInputTokens }) as {
      attention_mask: Tensor;
    };
    const outputs = (await loaded.model(inputs)) as Record<string, Tensor | undefined>;
    let hidden = outputs.last_hidden_state ?? outputs.token_embeddings;
    if (!hidden) throw new Error(`Embedding model ${this.id} has no last_hidden_state output`);
    // Pooling arithmetic needs float32; fp16 graphs return float16 tensors.
    if (hidden.type !== 'float32') hidden = hidden.to('float32');

    let pooled = loaded.pooling === 'cls' ? hidden.slice(null, 0) : mean_pooling(hidden, inputs.attention_mask);
    if (loaded.normalize) pooled = pooled.normalize(2, -1);

    const [rows = 0, width = 0] = pooled.dims;
    const data = pooled.data as Float32Array;
    const vectors = Array.from({ length: rows }, (_, row) => data.slice(row * width, (row + 1) * width));
    let promptTokens = 0;
    for (const flag of inputs.attention_mask.data as BigInt64Array) promptTokens += Number(flag);
    return { vectors, promptTokens };
  }
}
