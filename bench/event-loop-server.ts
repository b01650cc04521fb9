/**
 * Child process of bench/event-loop.ts: an embedded Cairn (PGlite, managed Qdrant, no embedding model, the
 * built-in `extractive` chat model) on loopback, built the way src/main.ts builds it. Prints
 * `{"url":…,"key":…}` on stdout once listening; stops and removes its temp dir on SIGTERM or when the
 * parent closes our stdin. A process of its own, so that the parent's probes measure Cairn's event loop and
 * the parent can read this process's peak RSS (/proc/<pid>/status VmHWM, worker threads included).
 */
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startServer } from '../src/server.ts';
import { createServices } from '../src/services.ts';

const dir = await mkdtemp(path.join(tmpdir(), 'cairn-bench-loop-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }));
const config = loadConfig({
  ...process.env,
  CAIRN_HOST: '127.0.0.1',
  CAIRN_PORT: '0',
  CAIRN_DATA_DIR: path.join(dir, 'data'),
  CAIRN_EMBEDDING_MODEL: 'none',
  CAIRN_ALLOW_MODEL_DOWNLOAD: 'false',
  CAIRN_SHUTDOWN_TIMEOUT_MS: '2000',
  DATABASE_URL: '',
});
const destination = pino.destination({ dest: process.env.BENCH_LOG_FILE ?? '/dev/null', sync: true });
const services = await createServices(config, createLogger(config.logLevel, destination));
const server = await startServer(services, 0, '127.0.0.1');
const { key } = await services.keys.create('bench');

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  void server.stop().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop).resume();
process.stdout.write(`${JSON.stringify({ url: server.url, key })}\n`);
