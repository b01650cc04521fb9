/**
 * Child process of bench/retrieval.ts: a real Cairn server on loopback, built the way src/main.ts
 * builds it (loadConfig → createServices → startServer), in server mode against the database
 * (DATABASE_URL; PGlite in a temp dir when it is empty) and the Qdrant (QDRANT_URL) that the
 * parent started, with one model, `bench-model`, pointing at the stub upstream. It creates one
 * API key and prints `{"url":…,"key":…,"projectId":…}` on stdout once listening. On
 * SIGTERM/SIGINT (or when its stdin closes: the parent is gone) it stops gracefully.
 *
 * Environment:
 *   BENCH_STUB_URL   the stub's base URL (http://127.0.0.1:<port>/v1), required
 *   QDRANT_URL       required: the parent writes the knowledge base's points into the same Qdrant
 *   DATABASE_URL     PostgreSQL (server mode); empty for embedded PGlite
 *   BENCH_LOG_FILE   where Cairn's JSON log lines go (default /dev/null); stdout stays free for the handshake
 *   CAIRN_LOG_LEVEL  as in production (default info)
 *
 * Commands, one per line on stdin, each answered with one JSON line:
 *   start                  reset the runtime statistics        → {"started":true}
 *   stats                  GC pauses, event-loop delay since `start` → {"stats":{…}}
 *   profile-start          start V8's CPU profiler              → {"profiling":true}
 *   profile-stop <file>    stop it and write the .cpuprofile     → {"profiled":"<file>"}
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startServer } from '../src/server.ts';
import { createServices } from '../src/services.ts';

const stubUrl = process.env.BENCH_STUB_URL;
if (!stubUrl) throw new Error('BENCH_STUB_URL is required');
if (!process.env.QDRANT_URL) throw new Error('QDRANT_URL is required');

// A stop request during startup waits for startup to finish, so that whatever Cairn opened is closed.
let stopWanted = false;
let stop = (): void => void (stopWanted = true);
process.on('SIGTERM', () => stop()); // on, not once: a second signal must not kill us mid-cleanup
process.on('SIGINT', () => stop());
process.stdin.on('end', () => stop()).resume(); // the parent holds our stdin: EOF means it is gone

const dir = await mkdtemp(path.join(tmpdir(), 'cairn-bench-retrieval-'));
const removeDir = { recursive: true, force: true, maxRetries: 5, retryDelay: 100 } as const;
process.once('exit', () => {
  try {
    rmSync(dir, removeDir); // also when startup fails
  } catch {
    // best effort
  }
});

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
  DATABASE_URL: process.env.DATABASE_URL ?? '',
});
const destination = pino.destination({ dest: process.env.BENCH_LOG_FILE ?? '/dev/null', sync: true });
const services = await createServices(config, createLogger(config.logLevel, destination));
const server = await startServer(services, 0, '127.0.0.1');
const { key, info } = await services.keys.create('bench-retrieval');

// --- runtime statistics for the measurement window
const gcPauses: number[] = [];
let majorGcs = 0;
let measuring = false;
new PerformanceObserver((list) => {
  if (!measuring) return;
  for (const entry of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>) {
    gcPauses.push(entry.duration);
    if (entry.detail?.kind !== 1) majorGcs += 1; // 1 = scavenge (minor)
  }
}).observe({ entryTypes: ['gc'] });
const loopDelay = monitorEventLoopDelay({ resolution: 1 });

let profiler: Session | undefined;
const reply = (message: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(message)}\n`);
createInterface({ input: process.stdin }).on('line', async (line) => {
  const [command, argument] = line.trim().split(/\s+/, 2);
  try {
    if (command === 'start') {
      gcPauses.length = 0;
      majorGcs = 0;
      measuring = true;
      loopDelay.reset();
      loopDelay.enable();
      reply({ started: true });
    } else if (command === 'stats') {
      const sorted = [...gcPauses].sort((a, b) => a - b);
      const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
      reply({
        stats: {
          gcPauses: sorted.length,
          majorGcs,
          gcMedianMs: sorted.length ? Math.round(sorted[sorted.length >> 1]! * 100) / 100 : 0,
          gcMaxMs: sorted.length ? Math.round(sorted.at(-1)! * 100) / 100 : 0,
          gcTotalMs: Math.round(sorted.reduce((a, b) => a + b, 0)),
          loopDelayP99Ms: ms(loopDelay.percentile(99)),
          loopDelayMaxMs: ms(loopDelay.max),
          heapUsedMb: Math.round(process.memoryUsage().heapUsed / 1e6),
        },
      });
    } else if (command === 'profile-start') {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.setSamplingInterval', { interval: 200 }); // µs
      await profiler.post('Profiler.start');
      reply({ profiling: true });
    } else if (command === 'profile-stop' && argument && profiler) {
      const { profile } = await profiler.post('Profiler.stop');
      profiler.disconnect();
      profiler = undefined;
      await writeFile(argument, JSON.stringify(profile));
      reply({ profiled: argument });
    }
  } catch (error) {
    reply({ error: (error as Error).message });
  }
});

let stopping = false;
stop = (): void => {
  if (stopping) return;
  stopping = true;
  void (async () => {
    try {
      await server.stop();
    } finally {
      await rm(dir, removeDir).catch((error: Error) => process.stderr.write(`could not remove ${dir}: ${error.message}\n`));
      process.exit(0);
    }
  })();
};
if (stopWanted) stop();
else reply({ url: server.url, key, projectId: info.projectId, db: config.databaseUrl ? 'postgres' : 'pglite' });
