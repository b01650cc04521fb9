/**
 * Child process of bench/gateway.ts: a real Cairn server on loopback, built the way src/main.ts
 * and test/helpers/harness.ts build it (loadConfig → createServices → startServer), with one
 * model, `bench-model`, pointing at the stub upstream. Prints `{"url":…,"key":…}` on stdout once
 * listening; on SIGTERM/SIGINT (or when the parent goes away) stops gracefully and cleans up,
 * so that `node --cpu-prof` gets to write its profile.
 *
 * Environment:
 *   BENCH_STUB_URL     the stub's base URL (http://127.0.0.1:<port>/v1), required
 *   BENCH_DB           `pglite` (embedded, default) or `postgres` (a fresh database, dropped at exit)
 *   BENCH_ADMIN_URL    Postgres admin connection (default TEST_DATABASE_ADMIN_URL or postgres://postgres@127.0.0.1:5432/postgres)
 *   BENCH_LOG_FILE     where Cairn's JSON log lines go (default /dev/null); stdout stays free for the handshake
 *   CAIRN_LOG_LEVEL    as in production (default info)
 *   BENCH_PROFILE_FILE when set, V8's CPU profiler runs from `start` (below) to exit and writes its
 *                      profile there: the measurements, not the startup
 *
 * Commands, one per line on stdin: `start` (a measurement begins: reset the runtime statistics and,
 * the first time, start the profiler) and `stats` (print `{"stats":…}` on stdout: requests served,
 * GC pauses and event-loop delay since `start`), which explain latency tails that a CPU profile
 * does not show.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startServer } from '../src/server.ts';
import { createServices } from '../src/services.ts';

const stubUrl = process.env.BENCH_STUB_URL;
if (!stubUrl) throw new Error('BENCH_STUB_URL is required');
const useDb = process.env.BENCH_DB ?? 'pglite';
const adminUrl = process.env.BENCH_ADMIN_URL ?? process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function adminQuery(sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

// A stop request during startup waits for startup to finish, so that whatever Cairn started
// (its database, a managed Qdrant) is closed and the temp dir removed rather than left behind.
let stopWanted = false;
let stop = (): void => void (stopWanted = true);
process.on('SIGTERM', () => stop()); // on, not once: a second signal must not kill us mid-cleanup
process.on('SIGINT', () => stop());
process.stdin.on('end', () => stop()).resume(); // the parent holds our stdin: EOF means it is gone

const dir = await mkdtemp(path.join(tmpdir(), 'cairn-bench-'));
const removeDir = { recursive: true, force: true, maxRetries: 5, retryDelay: 100 } as const;
process.once('exit', () => {
  try {
    rmSync(dir, removeDir); // also when startup fails
  } catch {
    // best effort
  }
});
let databaseName: string | undefined;
let databaseUrl: string | undefined;
if (useDb === 'postgres') {
  databaseName = `cairn_bench_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  await adminQuery(`CREATE DATABASE ${databaseName}`);
  const url = new URL(adminUrl);
  url.pathname = `/${databaseName}`;
  databaseUrl = url.toString();
} else if (useDb !== 'pglite') {
  throw new Error(`BENCH_DB must be pglite or postgres, not ${useDb}`);
}

const configFile = path.join(dir, 'models.json');
await writeFile(configFile, JSON.stringify({ models: [{ id: 'bench-model', upstreams: [{ base_url: stubUrl, model: 'stub-model' }] }] }));
const config = loadConfig({
  ...process.env,
  CAIRN_HOST: '127.0.0.1',
  CAIRN_PORT: '0',
  CAIRN_DATA_DIR: path.join(dir, 'data'),
  CAIRN_CONFIG: configFile,
  CAIRN_EMBEDDING_MODEL: 'none',
  CAIRN_ALLOW_MODEL_DOWNLOAD: 'false',
  CAIRN_SHUTDOWN_TIMEOUT_MS: '2000',
  DATABASE_URL: databaseUrl ?? '',
});
// Same logger as production (pino, synchronous writes), but into a file rather than our stdout.
const destination = pino.destination({ dest: process.env.BENCH_LOG_FILE ?? '/dev/null', sync: true });
const services = await createServices(config, createLogger(config.logLevel, destination));
const server = await startServer(services, 0, '127.0.0.1');
const { key } = await services.keys.create('bench');

// --- runtime statistics and profiling for the measurement window
let requests = 0;
server.server.on('request', () => void (requests += 1));
const gcPauses: number[] = [];
let majorGcs = 0;
let measuring = false;
new PerformanceObserver((list) => {
  if (!measuring) return;
  for (const entry of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>) {
    gcPauses.push(entry.duration);
    if (entry.detail?.kind !== 1) majorGcs += 1; // 1 = scavenge (minor); the others are mark-sweep phases
  }
}).observe({ entryTypes: ['gc'] });
const loopDelay = monitorEventLoopDelay({ resolution: 1 });

/** Heap in use after a full GC (the parent starts us with --expose-gc), i.e. what is really retained. */
function liveHeapMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return Math.round(process.memoryUsage().heapUsed / 1e6);
}

const profileFile = process.env.BENCH_PROFILE_FILE;
let profiler: Session | undefined;
createInterface({ input: process.stdin }).on('line', async (line) => {
  const command = line.trim();
  if (command === 'start') {
    if (profileFile && !profiler) {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start'); // blocks the event loop for a moment: before the statistics reset
    }
    requests = 0;
    gcPauses.length = 0;
    majorGcs = 0;
    measuring = true;
    loopDelay.reset();
    loopDelay.enable();
    process.stdout.write(`${JSON.stringify({ started: true })}\n`);
  } else if (command === 'stats') {
    const sorted = [...gcPauses].sort((a, b) => a - b);
    const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
    const stats = {
      requests,
      gcPauses: sorted.length,
      majorGcs,
      gcMedianMs: sorted.length ? Math.round(sorted[sorted.length >> 1]! * 100) / 100 : 0,
      gcMaxMs: sorted.length ? Math.round(sorted.at(-1)! * 100) / 100 : 0,
      gcTotalMs: Math.round(sorted.reduce((a, b) => a + b, 0)),
      loopDelayP99Ms: ms(loopDelay.percentile(99)),
      loopDelayMaxMs: ms(loopDelay.max),
      heapLiveMb: liveHeapMb(),
    };
    process.stdout.write(`${JSON.stringify({ stats })}\n`);
  }
});

let stopping = false;
stop = (): void => {
  if (stopping) return;
  stopping = true;
  void (async () => {
    try {
      if (profiler && profileFile) {
        const { profile } = await profiler.post('Profiler.stop');
        await writeFile(profileFile, JSON.stringify(profile));
      }
      await server.stop();
    } finally {
      if (databaseName) await adminQuery(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`).catch(() => undefined);
      await rm(dir, removeDir).catch((error: Error) => process.stderr.write(`could not remove ${dir}: ${error.message}\n`));
      process.exit(0);
    }
  })();
};
if (stopWanted) stop();
else process.stdout.write(`${JSON.stringify({ url: server.url, key, logLevel: config.logLevel, db: useDb })}\n`);
