/**
 * Load and soak benchmark: `npm run bench:load` (try `-- --duration 30 --warmup 5` first).
 *
 * Setup, all on 127.0.0.1, each server in a child process of its own:
 *   - the stub upstream (bench/stub-server.ts → test/helpers/stub-upstream.ts),
 *   - Cairn (bench/cairn-server.ts: loadConfig → createServices → startServer) in embedded mode as
 *     the other benchmarks run it: PGlite (or --db=postgres: a fresh database), a managed Qdrant
 *     started by Cairn, the in-process ingestion queue, `CAIRN_EMBEDDING_MODEL=none` (no weights),
 *     one model, `bench-model`, on the stub; its log lines go to a temp file.
 * Through the API: two lexical knowledge bases (`embedding_model: "none"`): `seed`, with --seed-docs
 * small Markdown documents ingested before the run, and `uploads`, which the clients fill.
 *
 * The run: --clients clients (64), each an official `openai` SDK instance (maxRetries 0) looping over
 * a weighted mix of operations (--mix, bench/load-workload.ts: plain chat, streaming chat with
 * `knowledge_bases`, KB search, upload + attach (+ delete of the oldest upload past --keep-uploads)),
 * first for --warmup seconds, then for --duration seconds, the measured window. Cairn's RSS (VmRSS
 * from /proc) is sampled every second throughout; the baseline is the sample at the end of the
 * warm-up. Errors count over the whole run, latencies and rates over the measured window.
 *
 * Report: requests/s overall and per route, p50/p99 per route, errors per route (with the first
 * messages), RSS at the start of the window, its max and end, and the growth; the live JS heap after
 * a full GC at both ends (the Cairn child runs with --expose-gc); GC and event-loop statistics; the
 * ingestion backlog left at the end. Targets: 0 errors, RSS growth ≤ 10 %.
 *
 * Options (flag or environment variable):
 *   --clients=N            BENCH_CLIENTS       concurrent clients (default 64, at most 256)
 *   --duration=S           BENCH_DURATION      measured window in seconds (default 300, at most 3,600)
 *   --warmup=S             BENCH_WARMUP        warm-up before it in seconds (default 30)
 *   --mix=op:w,…           BENCH_MIX           weights (default chat:40,stream:20,search:30,upload:10)
 *   --seed-docs=N          BENCH_SEED_DOCS     documents in the seed KB (default 40)
 *   --max-uploads=N        BENCH_MAX_UPLOADS   upload operations in the whole run (default 10,000);
 *                                              past it, upload turns into search
 *   --keep-uploads=N       BENCH_KEEP_UPLOADS  uploaded files kept at once (default 200)
 *   --db=pglite|postgres   BENCH_DB            Cairn's database (default pglite)
 *   --json=file            BENCH_JSON          also write the results as JSON
 *   --strict               BENCH_STRICT=1      exit 1 when a target is missed
 */
import { readdirSync, readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI, { toFile } from 'openai';
import { option, truthy } from './options.ts';
import { cpuMs, fmt, fmtInt, table } from './report.ts';
import { command, killChildrenNow, startChild, stopChildren, summarise, type Child } from './retrieval-util.ts';
import { document, OPERATIONS, Recorder, runClient, SharedUploads, type Operation, type Workload } from './load-workload.ts';

// ---------------------------------------------------------------- options

function integer(name: string, envName: string, fallback: number, min: number, max: number): number {
  const raw = option(name, envName);
  if (raw === undefined) return fallback;
  const value = Number(raw.replace(/[_,]/g, ''));
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`--${name} must be an integer in [${min}, ${max}], not ${raw}`);
  return value;
}

function weights(raw: string): Record<Operation, number> {
  const result = Object.fromEntries(OPERATIONS.map((op) => [op, 0])) as Record<Operation, number>;
  for (const part of raw.split(',')) {
    const [op, weight] = part.split(':');
    if (!OPERATIONS.includes(op as Operation) || !(Number(weight) >= 0)) throw new Error(`--mix: expected op:weight with op one of ${OPERATIONS.join(', ')}, not ${part}`);
    result[op as Operation] = Number(weight);
  }
  if (OPERATIONS.every((op) => result[op] === 0)) throw new Error('--mix: every weight is 0');
  return result;
}

const CLIENTS = integer('clients', 'BENCH_CLIENTS', 64, 1, 256);
const DURATION_S = integer('duration', 'BENCH_DURATION', 300, 1, 3_600);
const WARMUP_S = integer('warmup', 'BENCH_WARMUP', 30, 0, 600);
const MIX_TEXT = option('mix', 'BENCH_MIX') ?? 'chat:40,stream:20,search:30,upload:10';
const MIX = weights(MIX_TEXT);
const SEED_DOCS = integer('seed-docs', 'BENCH_SEED_DOCS', 40, 1, 1_000);
const MAX_UPLOADS = integer('max-uploads', 'BENCH_MAX_UPLOADS', 10_000, 0, 100_000);
const KEEP_UPLOADS = integer('keep-uploads', 'BENCH_KEEP_UPLOADS', 200, 1, 10_000);
const DB = option('db', 'BENCH_DB') ?? 'pglite';
const JSON_FILE = option('json', 'BENCH_JSON');
const STRICT = truthy(option('strict', 'BENCH_STRICT'));
const GOALS = { errors: 0, rssGrowthPct: 10 };
/** Whole-run budget (setup, warm-up, window, drain, shutdown); the watchdog stops everything after it. */
const DEADLINE_MS = (WARMUP_S + DURATION_S + 300) * 1_000;
/** How long the ingestion backlog may take to drain after the clients stop. */
const DRAIN_MS = 60_000;

// ---------------------------------------------------------------- children and cleanup

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const runStarted = performance.now();
const log = (message: string): void => void process.stderr.write(`[${((performance.now() - runStarted) / 1000).toFixed(1)}s] ${message}\n`);
const logDir = mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-load-'));
const logFile = path.join(logDir, 'cairn.log');
let keepLogs = false;

process.once('exit', () => {
  killChildrenNow(); // last resort
  if (!keepLogs) rmSync(logDir, { recursive: true, force: true });
});
let aborting = false;
const abort = (message: string, code: number): void => {
  if (aborting) return;
  aborting = true;
  log(message);
  void stopChildren().finally(() => process.exit(code));
};
process.on('SIGINT', () => abort('SIGINT: stopping the benchmark', 130));
process.on('SIGTERM', () => abort('SIGTERM: stopping the benchmark', 143));
setTimeout(() => abort(`benchmark exceeded its ${DEADLINE_MS / 1000} s budget; aborting`, 1), DEADLINE_MS).unref();

// ---------------------------------------------------------------- memory

/** VmRSS of a process in MB, NaN once it is gone. */
function rssMb(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Child processes of `pid` (of all its threads): Cairn's managed Qdrant. */
function childPids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

interface RssSample {
  /** Seconds since the end of the warm-up (negative during it). */
  t: number;
  cairnMb: number;
  qdrantMb: number;
  /** Requests completed so far, over the whole run. */
  completed: number;
}

// ---------------------------------------------------------------- run

async function main(): Promise<void> {
  log(`load: ${CLIENTS} clients, ${WARMUP_S} s warm-up + ${DURATION_S} s measured, mix ${MIX_TEXT}, db ${DB}`);
  const stub: Child = await startChild('stub', root, ['--import', 'tsx', path.join(here, 'stub-server.ts')]);
  const cairn: Child = await startChild('cairn', root, ['--expose-gc', '--import', 'tsx', path.join(here, 'cairn-server.ts')], {
    BENCH_STUB_URL: stub.info.url!,
    BENCH_DB: DB,
    BENCH_LOG_FILE: logFile,
  });
  const cairnPid = cairn.proc.pid!;
  const sdk = (): OpenAI => new OpenAI({ baseURL: `${cairn.info.url}/v1`, apiKey: cairn.info.key!, maxRetries: 0, timeout: 60_000 });
  const admin = sdk();

  // --- the knowledge bases
  const lexical = { embedding_model: 'none' } as object;
  const seedKb = await admin.vectorStores.create({ name: 'load-seed', ...lexical });
  const uploadsKb = await admin.vectorStores.create({ name: 'load-uploads', ...lexical });
  const docs = await Promise.all(Array.from({ length: SEED_DOCS }, (_, i) => document(i)).map((doc) => toFile(Buffer.from(doc.text), doc.name, { type: 'text/markdown' })));
  const batch = await admin.vectorStores.fileBatches.uploadAndPoll(seedKb.id, { files: docs }, { pollIntervalMs: 200, maxConcurrency: 4 });
  if (batch.file_counts.completed !== SEED_DOCS) throw new Error(`seeding: ${JSON.stringify(batch.file_counts)}`);
  log(`seed KB ${seedKb.id}: ${SEED_DOCS} documents ingested`);

  // --- memory sampling, from the start
  const recorder = new Recorder();
  let windowStart = performance.now() + WARMUP_S * 1000; // planned here, set when the warm-up is over
  const samples: RssSample[] = [];
  const qdrantPid = (): number | undefined => childPids(cairnPid).find((pid) => /qdrant/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8')));
  const sample = (): RssSample => {
    const qdrant = qdrantPid();
    const s = { t: (performance.now() - windowStart) / 1000, cairnMb: rssMb(cairnPid), qdrantMb: qdrant ? rssMb(qdrant) : Number.NaN, completed: recorder.completed };
    samples.push(s);
    return s;
  };
  sample();
  const sampler = setInterval(sample, 1_000);

  // --- the clients
  const work: Workload = { seedKbId: seedKb.id, uploadsKbId: uploadsKb.id, maxUploads: MAX_UPLOADS, keepUploads: KEEP_UPLOADS, recorder };
  const uploads = new SharedUploads();
  let running = true;
  const clients = Array.from({ length: CLIENTS }, (_, i) => runClient(i, sdk(), work, uploads, MIX, () => running));

  await new Promise((resolve) => setTimeout(resolve, WARMUP_S * 1000));
  windowStart = performance.now();
  const rssStart = sample();
  const heapStart = (await command(cairn, 'stats', 'stats'))?.stats as Record<string, number> | undefined; // forces a full GC first
  await command(cairn, 'start', 'started'); // GC and event-loop statistics from here
  recorder.measuring = true;
  const cpuStart = { cairn: cpuMs(cairnPid), stub: cpuMs(stub.proc.pid), load: cpuMs(process.pid) };
  const errorsAtWindow = [...recorder.routes.values()].reduce((sum, r) => sum + r.errors, 0);
  log(`warm-up over (${errorsAtWindow} errors so far); measuring for ${DURATION_S} s; Cairn RSS ${fmt(rssStart.cairnMb, 1)} MB`);
  const progress = setInterval(() => {
    const last = samples.at(-1)!;
    log(`${Math.round(last.t)} s: Cairn RSS ${fmt(last.cairnMb, 1)} MB, ${fmtInt(last.completed)} requests, ${fmtInt([...recorder.routes.values()].reduce((sum, r) => sum + r.errors, 0))} errors`);
  }, 30_000);

  await new Promise((resolve) => setTimeout(resolve, DURATION_S * 1000));
  recorder.measuring = false;
  const windowMs = performance.now() - windowStart;
  const cpuEnd = { cairn: cpuMs(cairnPid), stub: cpuMs(stub.proc.pid), load: cpuMs(process.pid) };
  const rssEnd = sample();
  clearInterval(progress);
  running = false;
  await Promise.all(clients);
  clearInterval(sampler);
  const runtime = (await command(cairn, 'stats', 'stats'))?.stats as Record<string, number> | undefined;

  // --- the ingestion backlog: wait (bounded) for the queue to drain
  const drainStarted = performance.now();
  let counts = (await admin.vectorStores.retrieve(uploadsKb.id)).file_counts;
  while (counts.in_progress > 0 && performance.now() - drainStarted < DRAIN_MS) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    counts = (await admin.vectorStores.retrieve(uploadsKb.id)).file_counts;
  }
  const drainMs = performance.now() - drainStarted;
  if (counts.failed > 0) recorder.fail('ingestion', new Error(`${counts.failed} uploaded files failed ingestion`));
  if (counts.in_progress > 0) recorder.fail('ingestion', new Error(`${counts.in_progress} files still in progress ${DRAIN_MS / 1000} s after the clients stopped`));

  report({ windowMs, rssStart, rssEnd, samples, heapStart, runtime, cpuStart, cpuEnd, recorder, uploads, counts, drainMs });
}

interface Results {
  windowMs: number;
  rssStart: RssSample;
  rssEnd: RssSample;
  samples: RssSample[];
  heapStart: Record<string, number> | undefined;
  runtime: Record<string, number> | undefined;
  cpuStart: Record<string, number>;
  cpuEnd: Record<string, number>;
  recorder: Recorder;
  uploads: SharedUploads;
  counts: { in_progress: number; completed: number; failed: number; total: number };
  drainMs: number;
}

function report(r: Results): void {
  const seconds = r.windowMs / 1000;
  const routes = [...r.recorder.routes.entries()];
  const requests = routes.filter(([name]) => !name.includes('first chunk')).reduce((sum, [, s]) => sum + s.measured, 0);
  const errors = routes.reduce((sum, [, s]) => sum + s.errors, 0);
  const rows = routes.map(([name, s]) => {
    const sum = summarise(s.latencies);
    return [name, fmtInt(s.measured), fmt(s.measured / seconds, 1), fmt(sum.p50), fmt(sum.p99), fmt(sum.max), fmtInt(s.errors)];
  });
  rows.push(['all requests', fmtInt(requests), fmt(requests / seconds, 1), '', '', '', fmtInt(errors)]);
  const window = r.samples.filter((s) => s.t >= 0 && s.t <= r.rssEnd.t + 0.001);
  const rssMax = Math.max(...window.map((s) => s.cairnMb));
  const growthPct = ((r.rssEnd.cairnMb - r.rssStart.cairnMb) / r.rssStart.cairnMb) * 100;
  const qdrantGrowthPct = ((r.rssEnd.qdrantMb - r.rssStart.qdrantMb) / r.rssStart.qdrantMb) * 100;
  const cores = (name: string): string => fmt((r.cpuEnd[name]! - r.cpuStart[name]!) / r.windowMs, 2);

  const out: string[] = [];
  out.push(`\n## Load: ${CLIENTS} clients, ${WARMUP_S} s warm-up + ${fmt(seconds, 0)} s measured, mix ${MIX_TEXT}, db ${DB}\n`);
  out.push(table(['route', 'n', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors'], rows, [false, true, true, true, true, true, true]));
  const firstErrors = routes.filter(([, s]) => s.firstErrors.length > 0);
  if (firstErrors.length > 0) {
    out.push('\nFirst errors per route (errors count over the whole run, warm-up included):');
    for (const [name, s] of firstErrors) for (const message of s.firstErrors) out.push(`- ${name}: ${message.slice(0, 300)}`);
  }
  out.push('');
  out.push(
    table(
      ['memory', 'start (after warm-up)', 'max', 'end', 'growth'],
      [
        ['Cairn RSS MB', fmt(r.rssStart.cairnMb, 1), fmt(rssMax, 1), fmt(r.rssEnd.cairnMb, 1), `${fmt(growthPct, 1)} %`],
        ['Cairn live heap MB (after full GC)', fmt(r.heapStart?.heapLiveMb ?? Number.NaN, 0), '', fmt(r.runtime?.heapLiveMb ?? Number.NaN, 0), ''],
        ['managed Qdrant RSS MB', fmt(r.rssStart.qdrantMb, 1), fmt(Math.max(...window.map((s) => s.qdrantMb)), 1), fmt(r.rssEnd.qdrantMb, 1), `${fmt(qdrantGrowthPct, 1)} %`],
      ],
      [false, true, true, true, true],
    ),
  );
  // The RSS trend: ten points across the window.
  const step = Math.max(1, Math.floor(window.length / 10));
  const trend = window.filter((_, i) => i % step === 0 || i === window.length - 1);
  out.push(`\nCairn RSS over the window (MB): ${trend.map((s) => `${Math.round(s.t)} s ${fmt(s.cairnMb, 0)}`).join(', ')}`);
  // Single samples swing with GC; the means of the window's first and last tenths are steadier.
  const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / values.length;
  const tenth = r.rssEnd.t / 10;
  const firstMean = mean(window.filter((s) => s.t <= tenth).map((s) => s.cairnMb));
  const lastMean = mean(window.filter((s) => s.t >= r.rssEnd.t - tenth).map((s) => s.cairnMb));
  out.push(`Cairn RSS mean of the window's first and last tenth: ${fmt(firstMean, 1)} → ${fmt(lastMean, 1)} MB (${fmt(((lastMean - firstMean) / firstMean) * 100, 1)} %).`);
  out.push(
    `CPU over the window (cores, of 2 shared): Cairn ${cores('cairn')}, stub ${cores('stub')}, load generator ${cores('load')}. ` +
      `Cairn GC: ${r.runtime?.gcPauses ?? '–'} pauses (${r.runtime?.majorGcs ?? '–'} major), max ${r.runtime?.gcMaxMs ?? '–'} ms, total ${r.runtime?.gcTotalMs ?? '–'} ms; ` +
      `event-loop delay p99 ${r.runtime?.loopDelayP99Ms ?? '–'} ms, max ${r.runtime?.loopDelayMaxMs ?? '–'} ms.`,
  );
  out.push(
    `Uploads: ${fmtInt(r.uploads.started)} started${r.uploads.cappedAt ? ` (capped at --max-uploads ${MAX_UPLOADS})` : ''}; ` +
      `uploads KB at the end: ${r.counts.total} files, ${r.counts.completed} completed, ${r.counts.failed} failed, ${r.counts.in_progress} in progress after ${fmt(r.drainMs / 1000, 1)} s of draining.`,
  );
  const goals = [
    ['errors (whole run)', `= ${GOALS.errors}`, fmtInt(errors), errors <= GOALS.errors],
    ['Cairn RSS growth after warm-up', `≤ ${GOALS.rssGrowthPct} %`, `${fmt(growthPct, 1)} %`, growthPct <= GOALS.rssGrowthPct],
  ] as const;
  out.push('');
  out.push(table(['target', 'goal', 'measured', 'result'], goals.map(([name, goal, measured, ok]) => [name, goal, measured, ok ? 'PASS' : 'MISS']), [false, false, true, false]));
  process.stdout.write(`${out.join('\n')}\n`);

  if (errors > 0) {
    keepLogs = true;
    log(`Cairn's log kept for the errors: ${logFile}`);
  }
  if (JSON_FILE) {
    const json = {
      options: { clients: CLIENTS, durationS: DURATION_S, warmupS: WARMUP_S, mix: MIX, db: DB, seedDocs: SEED_DOCS, maxUploads: MAX_UPLOADS, keepUploads: KEEP_UPLOADS },
      windowS: seconds,
      requests,
      errors,
      routes: Object.fromEntries(routes.map(([name, s]) => [name, { ...summarise(s.latencies), perSecond: s.measured / seconds, errors: s.errors, firstErrors: s.firstErrors }])),
      rss: { startMb: r.rssStart.cairnMb, maxMb: rssMax, endMb: r.rssEnd.cairnMb, growthPct, samples: r.samples },
      heapLiveMb: { start: r.heapStart?.heapLiveMb, end: r.runtime?.heapLiveMb },
      runtime: r.runtime,
      uploads: { started: r.uploads.started, kb: r.counts },
      goals: Object.fromEntries(goals.map(([name, , , ok]) => [name, ok])),
    };
    writeFileSync(JSON_FILE, JSON.stringify(json, null, 2));
  }
  process.exitCode = STRICT && goals.some(([, , , ok]) => !ok) ? 1 : 0;
}

try {
  await main();
} catch (error) {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  keepLogs = true;
  log(`Cairn's log kept: ${logFile}`);
  process.exitCode = 1;
} finally {
  await stopChildren();
}
