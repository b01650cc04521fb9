/**
 * Starts a real Cairn server on loopback for end-to-end tests: a fresh PostgreSQL database
 * (or PGlite), the model config written to a temp file, and a key for a project.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import OpenAI from 'openai';
import pg from 'pg';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { createServices, type Services } from '../../src/services.ts';
import { acquireTestQdrant } from './qdrant.ts';

const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A new, empty PostgreSQL database, so test files never see each other's rows. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `cairn_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: ADMIN_URL });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/** Collects every log line, so tests can assert on what was (not) logged. */
export class CapturedLogs extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  text(): string {
    return this.lines.join('\n');
  }
}

export interface CairnOptions {
  /** The model config file's content (`models`, `embeddings`, `defaults`). */
  modelConfig?: Record<string, unknown>;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Use PGlite in a temp dir instead of a fresh PostgreSQL database. */
  pglite?: boolean;
  /** The clock expiry is judged by (expires_after), for tests that move time. */
  clock?: () => Date;
}

export interface TestCairn {
  url: string;
  baseURL: string;
  key: string;
  services: Services;
  server: RunningServer;
  logs: CapturedLogs;
  /** An official SDK client with SDK retries off, so each test sees Cairn's own behaviour. */
  client(options?: { apiKey?: string; timeout?: number }): OpenAI;
  newKey(project: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startCairn(options: CairnOptions = {}): Promise<TestCairn> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-test-'));
  const database = options.pglite ? undefined : await createTestDatabase();
  const qdrant = options.env?.QDRANT_URL ? undefined : await acquireTestQdrant();
  const configFile = path.join(dir, 'models.json');
  await writeFile(configFile, JSON.stringify(options.modelConfig ?? {}));
  const config = loadConfig({
    CAIRN_DATA_DIR: path.join(dir, 'data'),
    CAIRN_CONFIG: configFile,
    CAIRN_EMBEDDING_MODEL: 'none',
    CAIRN_ALLOW_MODEL_DOWNLOAD: 'false',
    CAIRN_LOG_LEVEL: 'info',
    CAIRN_SHUTDOWN_TIMEOUT_MS: '5000',
    CAIRN_INGEST_BACKOFF_MS: '50',
    ...(qdrant ? { QDRANT_URL: qdrant.url } : {}),
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...options.env,
  });
  const logs = new CapturedLogs();
  const services = await createServices(config, createLogger(config.logLevel, logs), 'api', { clock: options.clock });
  const server = await startServer(services, 0, '127.0.0.1');
  const { key } = await services.keys.create('project-a');
  const baseURL = `${server.url}/v1`;
  return {
    url: server.url,
    baseURL,
    key,
    services,
    server,
    logs,
    client: (clientOptions = {}) =>
      new OpenAI({ baseURL, apiKey: clientOptions.apiKey ?? key, maxRetries: 0, timeout: clientOptions.timeout ?? 10_000 }),
    newKey: async (project) => (await services.keys.create(project)).key,
    async stop() {
      await server.stop();
      await qdrant?.release();
      await database?.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A model config entry pointing at stub upstreams, with fast retries for tests. */
export function stubModel(id: string, urls: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    upstreams: urls.map((url) => ({ base_url: url, model: `upstream-${id}` })),
    retries: { max_retries: 2, backoff_ms: 1, max_backoff_ms: 1_000 },
    ...extra,
  };
}
