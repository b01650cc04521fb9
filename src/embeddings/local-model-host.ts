/**
 * What the in-process transformers.js models (the local embedder and the local reranker) share:
 * one lazy load per model, shared by concurrent callers and forgotten when it fails; calls run one
 * after another; close() waits for running work before disposing the session. Loads are serialised
 * process-wide by one lock, because the library's `env` is module-level state read throughout an
 * asynchronous load: each load sets it for its own model while no other load is running.
 */
import { env } from '@huggingface/transformers';
import type { PreTrainedModel, PreTrainedTokenizer, ProgressInfo } from '@huggingface/transformers';

/** Where a model's files come from: applied to the library's `env` right before its load. */
export interface ModelFileSettings {
  modelsDir?: string;
  /** Where downloaded weights are kept (the library's default is inside node_modules, which `npm ci` wipes). */
  cacheDir?: string;
  allowDownload: boolean;
}

export interface LocalModelHostOptions extends ModelFileSettings {
  id: string;
  /** Hub id, a directory name under modelsDir, or an absolute directory. */
  source: string;
  /** What the model is in log lines, e.g. "embedding model" ("embedding model file ready"). */
  label: string;
  logger?: { info(obj: object, msg: string): void };
}

export type ProgressCallback = (info: ProgressInfo) => void;

/** What a load yields: at least the ONNX session that close() disposes. */
export interface LoadedSession {
  model: { dispose(): Promise<unknown> };
}

const libraryDefaultLocalModelPath = env.localModelPath;
let loadLock: Promise<unknown> = Promise.resolve();

/** Runs `load` once every earlier load in the process has settled, with `env` set for `files`. */
function withLoadLock<T>(files: ModelFileSettings, load: () => Promise<T>): Promise<T> {
  const locked = (): Promise<T> => {
    env.allowLocalModels = true;
    env.localModelPath = files.modelsDir ?? libraryDefaultLocalModelPath;
    env.allowRemoteModels = files.allowDownload;
    if (files.cacheDir) env.cacheDir = files.cacheDir;
    return load();
  };
  const run = loadLock.then(locked, locked);
  loadLock = run.catch(() => undefined);
  return run;
}

/** Owns a local model's load, work queue and closing; the model-specific loading is `loadModel`. */
export class LocalModelHost<Loaded extends LoadedSession> {
  private loading: Promise<Loaded> | undefined;
  /** One ONNX session already uses every core, so calls on one model run one after another. */
  private queue: Promise<unknown> = Promise.resolve();
  private isClosed = false;
  private lastFailure: Error | undefined;

  constructor(
    private readonly options: LocalModelHostOptions,
    private readonly loadModel: (progress_callback: ProgressCallback) => Promise<Loaded>,
  ) {}

  get closed(): boolean {
    return this.isClosed;
  }

  /** Why the last load failed, until a load succeeds: the model cannot serve now. */
  get failure(): Error | undefined {
    return this.lastFailure;
  }

  /** The loaded model; concurrent callers share one load, and a failed load is retried by the next call. */
  load(): Promise<Loaded> {
    this.loading ??= withLoadLock(this.options, () => this.loadModel(this.progress)).then(
      (loaded) => {
        this.lastFailure = undefined;
        return loaded;
      },
      (error: unknown) => {
        // Forget the failure so a later call retries (the operator may have fixed the directory).
        this.loading = undefined;
        this.lastFailure = error instanceof Error ? error : new Error(String(error));
        throw error;
      },
    );
    return this.loading;
  }

  serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    this.isClosed = true;
    const loading = this.loading;
    this.loading = undefined;
    // Waits for running batches: disposing a session under a running inference crashes it.
    await this.serially(async () => {
      const loaded = await loading?.catch(() => undefined);
      await loaded?.model.dispose();
    });
  }

  // Per-byte progress events would flood the log; one line per finished file is enough.
  private readonly progress: ProgressCallback = (info) => {
    const { id, source, label, logger } = this.options;
    if (info.status === 'done') logger?.info({ model: id, source, file: info.file }, `${label} file ready`);
  };
}

/** Some tokenizers declare model_max_length = 1e30 ("no limit"); anything above this is not a real limit. */
const LARGEST_PLAUSIBLE_CONTEXT = 1_000_000;
const FALLBACK_MAX_INPUT_TOKENS = 512;

/** A size from a model's or tokenizer's config, if it is a positive integer below any real context length. */
export function plausibleSize(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= LARGEST_PLAUSIBLE_CONTEXT
    ? value
    : undefined;
}

/** The tokens the model reads: the smaller of the tokenizer's and the model's limits, 512 if neither declares one. */
export function maxInputTokensOf(tokenizer: PreTrainedTokenizer, model: PreTrainedModel): number {
  const config = model.config as unknown as Record<string, unknown>;
  const limits = [plausibleSize(tokenizer.model_max_length), plausibleSize(config.max_position_embeddings)];
  const known = limits.filter((limit): limit is number => limit !== undefined);
  return known.length > 0 ? Math.min(...known) : FALLBACK_MAX_INPUT_TOKENS;
}
