/**
 * Child process of bench/ingest.ts: the Cairn API in server mode, built the way src/main.ts builds
 * it (loadConfig → createServices → startServer), from the environment the parent passes
 * (DATABASE_URL, REDIS_URL, QDRANT_URL, CAIRN_DATA_DIR shared with the worker, CAIRN_QUEUE_NAME,
 * CAIRN_CONFIG, CAIRN_MODELS_DIR). It creates one API key and prints
 * `{"url":…,"key":…,"projectId":…}` on stdout once listening. Log lines go to BENCH_LOG_FILE
 * (default /dev/null), synchronously, so stdout stays free for the handshake.
 * On SIGTERM/SIGINT, or when its stdin closes (the parent is gone), it stops gracefully.
 */
import { pino } from 'pino';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startServer } from '../src/server.ts';
import { createServices } from '../src/services.ts';

let stopWanted = false;
let stop = (): void => void (stopWanted = true);
process.on('SIGTERM', () => stop());
process.on('SIGINT', () => stop());
process.stdin.on('end', () => stop()).resume();

const config = loadConfig({ ...process.env, CAIRN_HOST: '127.0.0.1', CAIRN_PORT: '0' });
if (!config.databaseUrl || !config.redisUrl || !config.qdrantUrl) throw new Error('ingest-server needs DATABASE_URL, REDIS_URL and QDRANT_URL');
const destination = pino.destination({ dest: process.env.BENCH_LOG_FILE ?? '/dev/null', sync: true });
const services = await createServices(config, createLogger(config.logLevel, destination));
const server = await startServer(services, 0, '127.0.0.1');
const { key, info } = await services.keys.create('bench-ingest');

let stopping = false;
stop = (): void => {
  if (stopping) return;
  stopping = true;
  server.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`ingest-server: shutdown failed: ${(error as Error).message}\n`);
      process.exit(1);
    },
  );
};
if (stopWanted) stop();
else process.stdout.write(`${JSON.stringify({ url: server.url, key, projectId: info.projectId })}\n`);
