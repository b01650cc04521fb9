/**
 * Embeddings computed in-process with transformers.js (ONNX Runtime, CPU). The model is loaded
 * on first use from CAIRN_MODELS_DIR or, when allowed, downloaded from the Hugging Face hub.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { AutoModel, AutoTokenizer, env, mean_pooling } from '@huggingface/transformers';
import type { PreTrainedModel, PreTrainedTokenizer, ProgressInfo, Tensor } from '@huggingface/transformers';
import type { EmbeddingModelConfig } from '../config.ts';
import type { Embedder, EmbeddingBatch } from './embedder.ts';
import { EmbeddingModelUnavailableError } from './errors.ts';

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

/** Some tokenizers declare model_max_length = 1e30 ("no limit"); anything above this is not a real limit. */
const LARGEST_PLAUSIBLE_CONTEXT = 1_000_000;
const FALLBACK_MAX_INPUT_TOKENS = 512;

// `env` is transformers.js's module-level state, and the library reads it throughout an
// asynchronous load. Loads are therefore serialised process-wide, so that two embedders with
// different directories or download settings never interleave.
const libraryDefaultLocalModelPath = env.localModelPath;
let loadLock: Promise<unknown> = Promise.resolve();
function withLoadLock<T>(load: () => Promise<T>): Promise<T> {
  const run = loadLock.then(load, load);
  loadLock = run.catch(() => undefined);
  return run;
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

function positiveInteger(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= LARGEST_PLAUSIBLE_CONTEXT
    ? value
    : undefined;
}

export class LocalEmbedder implements Embedder {
  readonly id: string;
  private loading: Promise<LoadedModel> | undefined;
  /** One ONNX session already uses every core, so calls on one model run one after another. */
  private queue: Promise<unknown> = Promise.resolve();
  private learnedDimensions: number | undefined;
  private closed = false;

  constructor(private readonly options: LocalEmbedderOptions) {
    if (!Number.isInteger(options.maxBatchSize) || options.maxBatchSize < 1) {
      throw new RangeError(`Embedding model ${options.id}: maxBatchSize must be a positive integer`);
    }
    this.id = options.id;
  }

  async dimensions(): Promise<number> {
    const loaded = await this.load();
    this.learnedDimensions ??= loaded.hiddenSize ?? (await this.embed(['dimension probe'])).vectors[0]?.length;
    if (!this.learnedDimensions) throw new Error(`Embedding model ${this.id} returned no vector`);
    return this.learnedDimensions;
  }

  async maxInputTokens(): Promise<number> {
    return (await this.load()).maxInputTokens;
  }

  async embed(texts: string[], signal?: AbortSignal): Promise<EmbeddingBatch> {
    if (this.closed) throw new Error(`Embedding model ${this.id} is closed`);
    signal?.throwIfAborted();
    if (texts.length === 0) return { vectors: [], promptTokens: 0 };
    const loaded = await this.load();
    return this.serially(async () => {
      if (this.closed) throw new Error(`Embedding model ${this.id} is closed`);
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

  async close(): Promise<void> {
    this.closed = true;
    const loading = this.loading;
    this.loading = undefined;
    // Waits for running batches: disposing a session under a running inference crashes it.
    await this.serially(async () => {
      const loaded = await loading?.catch(() => undefined);
      await loaded?.model.dispose();
    });
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private load(): Promise<LoadedModel> {
    this.loading ??= withLoadLock(() => this.loadModel()).catch((error: unknown) => {
      // Forget the failure so a later call retries (the operator may have fixed the directory).
      this.loading = undefined;
      throw error;
    });
    return this.loading;
  }

  private async loadModel(): Promise<LoadedModel> {
    const { id, source, dtype, modelsDir, cacheDir, allowDownload, logger } = this.options;
    env.allowLocalModels = true;
    env.localModelPath = modelsDir ?? libraryDefaultLocalModelPath;
    env.allowRemoteModels = allowDownload;
    if (cacheDir) env.cacheDir = cacheDir;

    const started = performance.now();
    // Per-byte progress events would flood the log; one line per finished file is enough.
    const progress_callback = (info: ProgressInfo): void => {
      if (info.status === 'done') logger?.info({ model: id, source, file: info.file }, 'embedding model file ready');
    };
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
      const message = (error as Error).message;
      const reason = /not found locally/.test(message)
        ? `its files are not in ${modelsDir ? `CAIRN_MODELS_DIR (${modelsDir})` : 'a models directory (CAIRN_MODELS_DIR is unset)'} and downloads are disabled (${message})`
        : `loading failed (${message})`;
      throw new EmbeddingModelUnavailableError(id, source, reason, { cause: error });
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

    const config = model.config as unknown as Record<string, unknown>;
    const limits = [positiveInteger(tokenizer.model_max_length), positiveInteger(config.max_position_embeddings)];
    const known = limits.filter((limit): limit is number => limit !== undefined);
    const maxInputTokens = known.length > 0 ? Math.min(...known) : FALLBACK_MAX_INPUT_TOKENS;
    const hiddenSize = positiveInteger(config.hidden_size);

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
