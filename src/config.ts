/**
 * Every setting Cairn reads: environment variables plus the optional model config file
 * (YAML or JSON, path in CAIRN_CONFIG). Both are validated with zod; a bad value stops
 * startup with a message that names the variable or the config path.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_DOCUMENT_WORKER_LIMITS, type DocumentWorkerLimits } from './ingest/document-worker-pool.ts';
import { rerankConfigSchema, type RerankConfig } from './rag/reranker.ts';

export class ConfigError extends Error {}

const booleanFromEnv = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => ['true', '1', 'yes'].includes(value));

const envSchema = z.object({
  CAIRN_HOST: z.string().min(1).default('127.0.0.1'),
  CAIRN_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  CAIRN_DATA_DIR: z.string().min(1).default('./data'),
  CAIRN_CONFIG: z.string().min(1).optional(),
  DATABASE_URL: z.string().url().optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  REDIS_URL: z.string().url().optional(),
  QDRANT_URL: z.string().url().optional(),
  QDRANT_API_KEY: z.string().min(1).optional(),
  QDRANT_BIN: z.string().min(1).optional(),
  CAIRN_MAX_UPLOAD_BYTES: z.coerce.number().int().min(1).default(100 * 1024 * 1024),
  // Parsing and chunking run in a pool of worker threads; each file within these bounds (docs/configuration.md).
  CAIRN_PARSE_THREADS: z.coerce.number().int().min(1).max(64).default(DEFAULT_DOCUMENT_WORKER_LIMITS.threads),
  CAIRN_PARSE_MAX_HEAP_MB: z.coerce.number().int().min(64).default(DEFAULT_DOCUMENT_WORKER_LIMITS.maxHeapMb),
  CAIRN_PARSE_TIMEOUT_MS: z.coerce.number().int().min(1_000).default(DEFAULT_DOCUMENT_WORKER_LIMITS.timeoutMs),
  CAIRN_MAX_CSV_ROWS: z.coerce.number().int().min(1).default(DEFAULT_DOCUMENT_WORKER_LIMITS.maxCsvRows),
  CAIRN_MAX_JSON_VALUES: z.coerce.number().int().min(1).default(DEFAULT_DOCUMENT_WORKER_LIMITS.maxJsonValues),
  CAIRN_MAX_PDF_PAGES: z.coerce.number().int().min(1).default(DEFAULT_DOCUMENT_WORKER_LIMITS.maxPdfPages),
  CAIRN_MAX_CHUNKS_PER_FILE: z.coerce.number().int().min(1).default(DEFAULT_DOCUMENT_WORKER_LIMITS.maxChunks),
  CAIRN_INGEST_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  CAIRN_INGEST_BATCH_SIZE: z.coerce.number().int().min(1).max(4096).default(64),
  CAIRN_INGEST_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(8),
  CAIRN_INGEST_BACKOFF_MS: z.coerce.number().int().min(0).default(1_000),
  /** How often each process reclaims the storage of expired vector stores and files; 0 turns its sweeper off. */
  CAIRN_EXPIRY_SWEEP_INTERVAL_MS: z.coerce.number().int().min(0).default(60_000),
  CAIRN_QUEUE_NAME: z.string().regex(/^[\w-]{1,64}$/).default('cairn-ingest'),
  CAIRN_WORKER_LOCK_MS: z.coerce.number().int().min(500).default(30_000),
  CAIRN_RECONCILE_INTERVAL_MS: z.coerce.number().int().min(0).default(30_000),
  CAIRN_RECONCILE_GRACE_MS: z.coerce.number().int().min(0).default(60_000),
  CAIRN_RECONCILE_MAX_REQUEUES: z.coerce.number().int().min(0).default(3),
  CAIRN_MODELS_DIR: z.string().min(1).optional(),
  CAIRN_ALLOW_MODEL_DOWNLOAD: booleanFromEnv.default(true),
  CAIRN_EMBEDDING_MODEL: z.string().min(1).default('Xenova/bge-small-en-v1.5'),
  CAIRN_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CAIRN_BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).default(20 * 1024 * 1024),
  CAIRN_AUTH_CACHE_TTL_MS: z.coerce.number().int().min(0).default(10_000),
  CAIRN_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).default(30_000),
  // Slow-loris bounds: a client trickling its headers or body loses the connection after these.
  CAIRN_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(100).default(60_000),
  CAIRN_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).default(300_000),
  CAIRN_DEFAULT_RPM: z.coerce.number().int().min(1).optional(),
  CAIRN_DEFAULT_TPM: z.coerce.number().int().min(1).optional(),
  CAIRN_DEFAULT_STORAGE_QUOTA_BYTES: z.coerce.number().int().min(1).optional(),
});

const timeoutsSchema = z.object({
  connect_ms: z.number().int().positive().default(5_000),
  /** Time until the upstream sends response headers (for streams: until the stream starts). */
  first_byte_ms: z.number().int().positive().default(60_000),
  /** Longest silence between two body chunks once the response has started. */
  idle_ms: z.number().int().positive().default(60_000),
});

const retriesSchema = z.object({
  /** Retries after the first attempt, per model, before falling back. */
  max_retries: z.number().int().min(0).max(10).default(2),
  backoff_ms: z.number().int().min(0).default(250),
  max_backoff_ms: z.number().int().min(0).default(8_000),
});

const upstreamSchema = z.object({
  base_url: z.string().url(),
  model: z.string().min(1),
  api_key: z.string().min(1).optional(),
});

const modelSchema = z.object({
  id: z.string().min(1),
  aliases: z.array(z.string().min(1)).default([]),
  context_window: z.number().int().positive().default(8192),
  upstreams: z.array(upstreamSchema).min(1),
  fallbacks: z.array(z.string().min(1)).default([]),
  timeouts: timeoutsSchema.partial().optional(),
  retries: retriesSchema.partial().optional(),
});

/** Truncation sizes of a Matryoshka embedding model: positive, distinct. */
const truncationSizesSchema = z
  .array(z.number().int().positive())
  .min(1)
  .refine((sizes) => new Set(sizes).size === sizes.length, { message: 'dimensions must not repeat' });

const embeddingModelSchema = z.discriminatedUnion('provider', [
  z.object({
    id: z.string().min(1),
    provider: z.literal('local'),
    /** Hub id (`Xenova/bge-small-en-v1.5`) or a directory under CAIRN_MODELS_DIR. */
    source: z.string().min(1),
    dtype: z.enum(['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'bnb4', 'q4f16']).default('q8'),
    pooling: z.enum(['mean', 'cls']).optional(),
    normalize: z.boolean().optional(),
    max_batch_size: z.number().int().positive().default(32),
    /** Sizes a request's `dimensions` may truncate to (Matryoshka-trained models); see `matryoshka` for any size. */
    dimensions: truncationSizesSchema.optional(),
    matryoshka: z.boolean().optional(),
  }),
  z.object({
    id: z.string().min(1),
    provider: z.literal('openai'),
    base_url: z.string().url(),
    model: z.string().min(1).optional(),
    api_key: z.string().min(1).optional(),
    dimensions: z.number().int().positive().optional(),
    max_batch_size: z.number().int().positive().default(64),
    max_concurrency: z.number().int().positive().default(4),
    /** Here `dimensions` is what the upstream is asked for; `matryoshka: true` lets requests truncate further. */
    matryoshka: z.boolean().optional(),
  }),
]).refine((entry) => !(entry.matryoshka && Array.isArray(entry.dimensions)), {
  message: 'set either a `dimensions` list or `matryoshka: true`, not both',
  path: ['matryoshka'],
});

const modelFileSchema = z
  .object({
    defaults: z
      .object({ timeouts: timeoutsSchema.partial().optional(), retries: retriesSchema.partial().optional() })
      .default({}),
    models: z.array(modelSchema).default([]),
    embeddings: z.array(embeddingModelSchema).default([]),
    /** Optional rerank stage of retrieval (off when absent). */
    rerank: rerankConfigSchema.optional(),
  })
  .strict();

export type Timeouts = z.infer<typeof timeoutsSchema>;
export type Retries = z.infer<typeof retriesSchema>;
export type UpstreamConfig = z.infer<typeof upstreamSchema>;
export type EmbeddingModelConfig = z.infer<typeof embeddingModelSchema>;

export interface ModelConfig {
  id: string;
  aliases: string[];
  contextWindow: number;
  upstreams: UpstreamConfig[];
  fallbacks: string[];
  timeouts: Timeouts;
  retries: Retries;
}

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl: string | undefined;
  databasePoolSize: number;
  redisUrl: string | undefined;
  qdrantUrl: string | undefined;
  qdrantApiKey: string | undefined;
  qdrantBin: string | undefined;
  maxUploadBytes: number;
  /** The parse-and-chunk worker pool and the per-format limits it enforces. */
  parsing: DocumentWorkerLimits;
  ingest: { concurrency: number; batchSize: number; attempts: number; backoffMs: number; workerLockMs: number; queueName: string;
    reconcileIntervalMs: number; reconcileGraceMs: number; reconcileMaxRequeues: number };
  modelsDir: string | undefined;
  allowModelDownload: boolean;
  defaultEmbeddingModel: string;
  logLevel: z.infer<typeof envSchema>['CAIRN_LOG_LEVEL'];
  bodyLimitBytes: number;
  shutdownTimeoutMs: number;
  /** Longest time to receive a request's headers, and the whole request (headers and body). */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  authCacheTtlMs: number;
  /** Server-wide defaults for keys and projects that set none; undefined is unlimited. */
  limits: { rpm?: number; tpm?: number; storageQuotaBytes?: number };
  expirySweepIntervalMs: number;
  models: ModelConfig[];
  embeddings: EmbeddingModelConfig[];
  rerank: RerankConfig | undefined;
  /** True when no external database is configured (PGlite). Jobs and Qdrant have their own switches: REDIS_URL, QDRANT_URL. */
  embedded: boolean;
}

function formatIssues(issues: z.core.$ZodIssue[], prefix: string): string {
  return issues
    .map((issue) => {
      const where = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
      return `  ${where || '(root)'}: ${issue.message}`;
    })
    .join('\n');
}

/** Replaces `${VAR}` and `${VAR:-default}` in every string of the parsed config file. */
function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, where: string): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_match, name: string, fallback?: string) => {
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`Model config ${where}: environment variable ${name} is not set`);
    });
  }
  if (Array.isArray(value)) return value.map((item, index) => interpolateEnv(item, env, `${where}[${index}]`));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, interpolateEnv(item, env, where ? `${where}.${key}` : key)]),
    );
  }
  return value;
}

function readModelFile(file: string, env: NodeJS.ProcessEnv): z.infer<typeof modelFileSchema> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`CAIRN_CONFIG: cannot read ${file}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError(`CAIRN_CONFIG: ${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(error as Error).message}`);
  }
  const parsed = modelFileSchema.safeParse(interpolateEnv(raw ?? {}, env, ''));
  if (!parsed.success) throw new ConfigError(`Invalid model config ${file}:\n${formatIssues(parsed.error.issues, '')}`);
  return parsed.data;
}

function checkModelReferences(models: ModelConfig[]): void {
  const names = new Map<string, string>();
  for (const model of models) {
    for (const name of [model.id, ...model.aliases]) {
      const owner = names.get(name);
      if (owner) throw new ConfigError(`Model config: "${name}" is used by both ${owner} and ${model.id}`);
      names.set(name, model.id);
    }
  }
  for (const model of models) {
    for (const fallback of model.fallbacks) {
      if (!names.has(fallback)) throw new ConfigError(`Model config: ${model.id} falls back to unknown model "${fallback}"`);
    }
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty variables count as unset, the way shells and compose files usually mean them.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) throw new ConfigError(`Invalid environment:\n${formatIssues(parsed.error.issues, '')}`);
  const vars = parsed.data;
  if (vars.CAIRN_HEADERS_TIMEOUT_MS > vars.CAIRN_REQUEST_TIMEOUT_MS) {
    throw new ConfigError('Invalid environment:\n  CAIRN_HEADERS_TIMEOUT_MS: must not exceed CAIRN_REQUEST_TIMEOUT_MS');
  }

  const file = vars.CAIRN_CONFIG ? readModelFile(path.resolve(vars.CAIRN_CONFIG), env) : undefined;
  const defaults = file?.defaults ?? {};
  const models: ModelConfig[] = (file?.models ?? []).map((model) => ({
    id: model.id,
    aliases: model.aliases,
    contextWindow: model.context_window,
    upstreams: model.upstreams,
    fallbacks: model.fallbacks,
    timeouts: timeoutsSchema.parse({ ...defaults.timeouts, ...model.timeouts }),
    retries: retriesSchema.parse({ ...defaults.retries, ...model.retries }),
  }));
  checkModelReferences(models);

  return {
    host: vars.CAIRN_HOST,
    port: vars.CAIRN_PORT,
    dataDir: path.resolve(vars.CAIRN_DATA_DIR),
    databaseUrl: vars.DATABASE_URL,
    databasePoolSize: vars.DATABASE_POOL_SIZE,
    redisUrl: vars.REDIS_URL,
    qdrantUrl: vars.QDRANT_URL,
    qdrantApiKey: vars.QDRANT_API_KEY,
    qdrantBin: vars.QDRANT_BIN,
    maxUploadBytes: vars.CAIRN_MAX_UPLOAD_BYTES,
    parsing: {
      threads: vars.CAIRN_PARSE_THREADS,
      maxHeapMb: vars.CAIRN_PARSE_MAX_HEAP_MB,
      timeoutMs: vars.CAIRN_PARSE_TIMEOUT_MS,
      maxCsvRows: vars.CAIRN_MAX_CSV_ROWS,
      maxJsonValues: vars.CAIRN_MAX_JSON_VALUES,
      maxPdfPages: vars.CAIRN_MAX_PDF_PAGES,
      maxChunks: vars.CAIRN_MAX_CHUNKS_PER_FILE,
    },
    ingest: {
      concurrency: vars.CAIRN_INGEST_CONCURRENCY,
      batchSize: vars.CAIRN_INGEST_BATCH_SIZE,
      attempts: vars.CAIRN_INGEST_ATTEMPTS,
      backoffMs: vars.CAIRN_INGEST_BACKOFF_MS,
      workerLockMs: vars.CAIRN_WORKER_LOCK_MS,
      queueName: vars.CAIRN_QUEUE_NAME,
      reconcileIntervalMs: vars.CAIRN_RECONCILE_INTERVAL_MS,
      reconcileGraceMs: vars.CAIRN_RECONCILE_GRACE_MS,
      reconcileMaxRequeues: vars.CAIRN_RECONCILE_MAX_REQUEUES,
    },
    modelsDir: vars.CAIRN_MODELS_DIR ? path.resolve(vars.CAIRN_MODELS_DIR) : undefined,
    allowModelDownload: vars.CAIRN_ALLOW_MODEL_DOWNLOAD,
    defaultEmbeddingModel: vars.CAIRN_EMBEDDING_MODEL,
    logLevel: vars.CAIRN_LOG_LEVEL,
    bodyLimitBytes: vars.CAIRN_BODY_LIMIT_BYTES,
    shutdownTimeoutMs: vars.CAIRN_SHUTDOWN_TIMEOUT_MS,
    headersTimeoutMs: vars.CAIRN_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: vars.CAIRN_REQUEST_TIMEOUT_MS,
    authCacheTtlMs: vars.CAIRN_AUTH_CACHE_TTL_MS,
    limits: { rpm: vars.CAIRN_DEFAULT_RPM, tpm: vars.CAIRN_DEFAULT_TPM, storageQuotaBytes: vars.CAIRN_DEFAULT_STORAGE_QUOTA_BYTES },
    expirySweepIntervalMs: vars.CAIRN_EXPIRY_SWEEP_INTERVAL_MS,
    models,
    embeddings: file?.embeddings ?? [],
    rerank: file?.rerank,
    embedded: !vars.DATABASE_URL,
  };
}
