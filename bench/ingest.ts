/**
 * Ingestion benchmark: `npm run bench:ingest` (add `-- --quick` for the first 1,000 documents).
 *
 * The BEIR SciFact corpus (../shared/datasets/scifact/corpus.jsonl, 5,183 abstracts) goes through
 * the real HTTP API and a real BullMQ worker process into Qdrant, in server mode:
 *   - a fresh PostgreSQL database (127.0.0.1:5432, dropped at exit),
 *   - Redis at 127.0.0.1:6379 with a queue name of this run's own (obliterated at exit),
 *   - a Qdrant started from node_modules (ManagedQdrant), in a temp dir,
 *   - the Cairn API as a child process (bench/ingest-server.ts),
 *   - one `cairn worker` child (`node --import tsx src/main.ts worker`), fresh for every run,
 *     sharing CAIRN_DATA_DIR (the blob store) with the API.
 * One document per file: `<_id>.txt` holding `title + "\n\n" + text`. All files are uploaded first
 * (POST /v1/files, `--upload-concurrency` at once), once, and shared by the runs. Each run then
 * creates a knowledge base, attaches the files with file batches of 500 (POST
 * /v1/knowledge_bases/{id}/file_batches, sent back to back) and polls every `--poll-ms` (250 ms):
 * the status of each unfinished batch, and for a batch with new completions its completed files
 * (GET …/file_batches/{batch}/files?filter=completed&order=desc&limit=100, paging until every new
 * completion is found). A file's attach→completed time runs from the moment its batch's POST was
 * sent to the arrival of the first listing that shows it completed: an upper bound, to within one
 * poll interval plus a request.
 *
 * Runs: (1) lexical-only (`embedding_model: "none"`), (2) dense, with a tiny generated ONNX model
 * (test/helpers/tiny-model.ts, 32 dimensions, declared in the model config file's `embeddings`).
 * After each run, bench/ingest-baseline.ts pushes the same files through the same modules in one
 * process (parse → chunk → embed → BM25 → Qdrant upsert in batches of 64, no HTTP, queue or
 * Postgres); overhead ratio = the pipeline's end-to-end chunks/s ÷ the baseline's.
 *
 * Options (flag or environment variable):
 *   --quick                   BENCH_QUICK=1                the first 1,000 documents
 *   --limit=N                 BENCH_LIMIT                  the first N documents
 *   --concurrency=N           BENCH_CONCURRENCY            CAIRN_INGEST_CONCURRENCY of the worker (default 2), and the baseline's lanes
 *   --skip-dense              BENCH_SKIP_DENSE=1           the lexical run only
 *   --poll-ms=N               BENCH_POLL_MS                poll interval (default 250)
 *   --upload-concurrency=N    BENCH_UPLOAD_CONCURRENCY     uploads at once (default 8)
 *   --profile                 BENCH_PROFILE=1              `node --cpu-prof` on the worker and baseline children; profiles
 *                                                          go to $TMPDIR/cairn-bench-profiles/ (or --profile-dir=…);
 *                                                          summarise with bench/profile-top.ts (--skip-ms for startup)
 *   --corpus=file             BENCH_CORPUS                 another BEIR corpus.jsonl
 *   --json=file               BENCH_JSON                   also write the results as JSON
 *   --strict                  BENCH_STRICT=1               exit 1 when a target is missed
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { PostgresDatabase } from '../src/store/database.ts';
import { KnowledgeBaseStore } from '../src/store/knowledge-bases.ts';
import { ManagedQdrant } from '../src/vectors/managed-qdrant.ts';
import { collectionName, QdrantChunkStore } from '../src/vectors/qdrant-chunk-store.ts';
import { createTestDatabase, type TestDatabase } from '../test/helpers/harness.ts';
import { createTinyEmbeddingModel, type TinyModel } from '../test/helpers/tiny-model.ts';
import { BENCH_DIR, cpuMs, DEFAULT_CORPUS, loadCorpus, REPO_ROOT, statusKb } from './ingest-common.ts';
import { option, truthy } from './options.ts';

// ---------------------------------------------------------------- options

function positiveInt(name: string, envName: string, fallback: number): number {
  const raw = option(name, envName);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer, not ${raw}`);
  return value;
}
for (const arg of process.argv.slice(2)) {
  const known = ['quick', 'limit', 'concurrency', 'skip-dense', 'poll-ms', 'upload-concurrency', 'profile', 'profile-dir', 'corpus', 'json', 'strict'];
  if (!known.some((name) => arg === `--${name}` || arg.startsWith(`--${name}=`))) throw new Error(`unknown option ${arg}; known: ${known.map((n) => `--${n}`).join(' ')}`);
}

const QUICK = truthy(option('quick', 'BENCH_QUICK'));
const LIMIT = positiveInt('limit', 'BENCH_LIMIT', QUICK ? 1_000 : Number.MAX_SAFE_INTEGER);
const CONCURRENCY = positiveInt('concurrency', 'BENCH_CONCURRENCY', 2);
const SKIP_DENSE = truthy(option('skip-dense', 'BENCH_SKIP_DENSE'));
const POLL_MS = positiveInt('poll-ms', 'BENCH_POLL_MS', 250);
const UPLOAD_CONCURRENCY = positiveInt('upload-concurrency', 'BENCH_UPLOAD_CONCURRENCY', 8);
const PROFILE = truthy(option('profile', 'BENCH_PROFILE'));
const STRICT = truthy(option('strict', 'BENCH_STRICT'));
const JSON_FILE = option('json', 'BENCH_JSON');
const CORPUS = path.resolve(option('corpus', 'BENCH_CORPUS') ?? DEFAULT_CORPUS);
if (!existsSync(CORPUS)) {
  console.error(`bench:ingest: no corpus at ${CORPUS}: pass --corpus=FILE or set BENCH_CORPUS to a BEIR corpus.jsonl (the default, ../shared/datasets/scifact/corpus.jsonl, is the team's shared copy)`);
  process.exit(2);
}
const PROFILE_DIR = path.resolve(option('profile-dir', 'BENCH_PROFILE_DIR') ?? path.join(os.tmpdir(), 'cairn-bench-profiles'));
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** file_ids per POST …/file_batches (the API's maximum). */
const FILES_PER_BATCH = 500;
/** The pipeline's default CAIRN_INGEST_BATCH_SIZE, used by the baseline too. */
const BATCH_SIZE = 64;
/** Whole-run budget; the watchdog stops everything after it. */
const DEADLINE_MS = QUICK ? 8 * 60_000 : 30 * 60_000;
/** One run's ingestion must finish within this, else the run fails (and the benchmark goes on cleaning up). */
const RUN_TIMEOUT_MS = QUICK ? 3 * 60_000 : 10 * 60_000;

const GOALS = { overheadRatio: 0.8, lexicalWholeCorpusS: 60 };
const FULL_CORPUS_DOCS = 5_183;

// ---------------------------------------------------------------- child processes and cleanup

const spawned = new Set<ChildProcess>();
const runStarted = performance.now();
const log = (message: string): void => void process.stderr.write(`[${((performance.now() - runStarted) / 1000).toFixed(1)}s] ${message}\n`);

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<void>;
  stderrTail(): string;
}

/**
 * Starts `node <args>` in the repository and calls `onLine` with every JSON object it prints on
 * stdout; resolves once `ready` accepts one of them.
 */
function startChild(
  name: string,
  args: string[],
  env: Record<string, string>,
  ready: (message: Record<string, unknown>) => boolean,
  onLine: (message: Record<string, unknown>) => void = () => undefined,
  timeoutMs = 60_000,
): Promise<Child> {
  const proc = spawn(process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  spawned.add(proc);
  const tail: string[] = [];
  proc.stderr!.setEncoding('utf8').on('data', (text: string) => {
    tail.push(text);
    if (tail.length > 50) tail.shift();
  });
  let started = false;
  const exited = new Promise<void>((resolve) =>
    proc.once('exit', (code, signal) => {
      spawned.delete(proc);
      if (started && code !== 0 && code !== null) log(`${name} exited with code ${code}:\n${tail.join('')}`);
      else if (started && signal === 'SIGKILL') log(`${name} had to be killed`);
      resolve();
    }),
  );
  const child: Child = { name, proc, exited, stderrTail: () => tail.join('') };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start within ${timeoutMs} ms`)), timeoutMs);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(new Error(`${error.message}\n--- ${name} stderr ---\n${tail.join('')}`));
    };
    const onEarlyExit = (code: number | null, signal: string | null): void => fail(new Error(`${name} exited early (code ${code}, signal ${signal})`));
    proc.once('exit', onEarlyExit);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        return;
      }
      if (!message || typeof message !== 'object') return;
      onLine(message as Record<string, unknown>);
      if (!started && ready(message as Record<string, unknown>)) {
        started = true;
        clearTimeout(timer);
        proc.off('exit', onEarlyExit);
        resolve(child);
      }
    });
  });
}

/** SIGTERM, then SIGKILL after `graceMs`. */
async function stopChild(child: Child, graceMs = 20_000): Promise<void> {
  if (!spawned.has(child.proc)) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}

let qdrant: ManagedQdrant | undefined;
let database: TestDatabase | undefined;
const queueName = `cairn-bench-ingest-${process.pid}-${Date.now()}`;
const tempDir = mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-ingest-'));

function killAllNow(): void {
  for (const proc of spawned) proc.kill('SIGKILL');
  if (qdrant?.pid !== undefined) {
    try {
      process.kill(qdrant.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.once('exit', () => {
  killAllNow(); // last resort
  rmSync(tempDir, { recursive: true, force: true });
});

let cleanedUp: Promise<void> | undefined;
/** Stops every child, Qdrant, drops the database and the queue, removes the temp dir. Idempotent. */
function cleanup(): Promise<void> {
  cleanedUp ??= (async () => {
    const deadline = Date.now() + 20_000;
    for (const proc of spawned) proc.kill('SIGTERM');
    while (spawned.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    for (const proc of spawned) proc.kill('SIGKILL');
    await qdrant?.stop().catch((error: Error) => log(`could not stop Qdrant: ${error.message}`));
    await database?.drop().catch((error: Error) => log(`could not drop the database: ${error.message}`));
    const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue(queueName, { connection });
    await queue.obliterate({ force: true }).catch((error: Error) => log(`could not obliterate queue ${queueName}: ${error.message}`));
    await queue.close().catch(() => undefined);
    connection.disconnect();
    rmSync(tempDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  })();
  return cleanedUp;
}

let aborting = false;
const abort = (message: string, code: number): void => {
  if (aborting) return;
  aborting = true;
  log(message);
  void cleanup().finally(() => process.exit(code));
};
process.on('SIGINT', () => abort('SIGINT: stopping the benchmark', 130));
process.on('SIGTERM', () => abort('SIGTERM: stopping the benchmark', 143));
setTimeout(() => abort(`benchmark exceeded its ${DEADLINE_MS / 60_000} min budget; aborting`, 1), DEADLINE_MS).unref();

// ---------------------------------------------------------------- the API

let apiUrl = '';
let apiKey = '';
let apiRequests = 0;

class ApiError extends Error {}

async function api<T>(method: string, pathname: string, body?: unknown): Promise<T> {
  apiRequests += 1;
  const response = await fetch(`${apiUrl}/v1${pathname}`, {
    method,
    headers: { authorization: `Bearer ${apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new ApiError(`${method} ${pathname}: HTTP ${response.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

async function upload(filename: string, bytes: Buffer): Promise<string> {
  const form = new FormData();
  form.append('purpose', 'assistants');
  form.append('file', new Blob([new Uint8Array(bytes)], { type: 'text/plain' }), filename);
  const response = await fetch(`${apiUrl}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: form });
  const text = await response.text();
  if (!response.ok) throw new ApiError(`upload ${filename}: HTTP ${response.status}: ${text.slice(0, 500)}`);
  return (JSON.parse(text) as { id: string }).id;
}

interface FileCounts {
  in_progress: number;
  completed: number;
  failed: number;
  cancelled: number;
  total: number;
}
interface KbObject {
  id: string;
  file_counts: FileCounts;
  chunk_count: number;
  embedding_model: string;
}
interface KbFileObject {
  id: string;
  status: string;
  chunk_count: number;
  last_error: { code: string; message: string } | null;
}
interface ListPage<T> {
  data: T[];
  has_more: boolean;
  last_id: string | null;
}

// ---------------------------------------------------------------- CPU of the processes involved

/** Pids of every process with this command name (the shared Postgres and Redis servers). */
function pidsNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === comm) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

type CpuSnapshot = Record<string, number>;
/** CPU ms so far of each party; Postgres and Redis include their reaped children (backends that exited). */
function cpuSnapshot(pids: { worker: number | undefined; api: number | undefined }): CpuSnapshot {
  const sum = (list: number[]): number => list.reduce((total, pid) => total + (cpuMs(pid, true) || 0), 0);
  return {
    worker: cpuMs(pids.worker),
    api: cpuMs(pids.api),
    qdrant: cpuMs(qdrant?.pid),
    postgres: sum(pidsNamed('postgres')),
    redis: sum(pidsNamed('redis-server')),
    bench: cpuMs(process.pid),
  };
}

// ---------------------------------------------------------------- statistics and tables

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
const fmt = (value: number, digits = 2): string => (Number.isFinite(value) ? value.toFixed(digits) : '–');
const fmtInt = (value: number): string => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–');

function table(header: string[], rows: string[][], alignRight: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((cell, i) => (alignRight[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (alignRight[i] ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------- one run

type Mode = 'lexical' | 'dense';

interface BaselineVariant {
  name: string;
  docs: number;
  chunks: number;
  ms: number;
  parseChunkMs: number;
  embedMs: number;
  bm25Ms: number;
  upsertMs: number;
  markReadyMs: number;
  deleteMs: number;
  qdrantCalls: number;
}
interface Baseline {
  mode: Mode;
  loadMs: number;
  dimensions: number | null;
  maxTokens: number;
  overlapTokens: number;
  variants: BaselineVariant[];
}

interface RunResult {
  mode: Mode;
  kbId: string;
  embeddingModel: string;
  docs: number;
  completed: number;
  failed: number;
  firstFailure?: string;
  chunks: number;
  kbChunkCount: number;
  qdrantPoints: number;
  attachMs: number;
  wallMs: number;
  firstCompletedMs: number;
  docsPerS: number;
  chunksPerS: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  /** Time inside the worker per file (its "file ingested" log line). */
  jobP50Ms: number;
  jobP95Ms: number;
  workerPeakRssMb: number;
  /** The worker's RSS once started, before any job. */
  workerIdleRssMb: number;
  cpuMs: CpuSnapshot;
  pollRequests: number;
  /** Of which file listings (the rest are batch status requests). */
  pollPages: number;
  profileFile?: string;
  /** Where the worker's ingestion begins in its profile (its startup and idle time before the first attach). */
  profileSkipMs: number;
  baseline: Baseline;
  baselineChunksPerS: number;
  overheadRatio: number;
  /** KnowledgeBaseStore.get (which every job calls) on this KB, median ms: its counts aggregate over all the KB's files. */
  kbGetMs: number;
}

interface Batch {
  id: string;
  sentAt: number;
  fileIds: string[];
  /** Files of this batch seen finished, by status. */
  seen: { completed: number; failed: number; cancelled: number };
  done: boolean;
}

let tiny: TinyModel | undefined;
let projectId = '';

async function ingestRun(mode: Mode, fileIds: string[], sharedEnv: Record<string, string>): Promise<RunResult> {
  // --- a fresh worker: its peak RSS and CPU time are this run's alone
  const jobMs: number[] = [];
  // One directory per child: --cpu-prof writes one profile per thread (tsx's loader hooks run on one of their own).
  const profileDir = path.join(PROFILE_DIR, `worker-${mode}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const profileArgs = PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const spawnedAt = performance.now();
  const worker = await startChild(
    `worker (${mode})`,
    [...profileArgs, '--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), 'worker'],
    { ...sharedEnv, CAIRN_INGEST_CONCURRENCY: String(CONCURRENCY), CAIRN_LOG_LEVEL: 'info' },
    (message) => message.msg === 'ingestion worker started',
    (message) => {
      if (message.msg === 'file ingested' && typeof message.ms === 'number') jobMs.push(message.ms);
      else if (typeof message.level === 'number' && message.level >= 40) log(`worker: ${JSON.stringify(message).slice(0, 600)}`);
    },
  );
  const workerStartupMs = performance.now() - spawnedAt;
  const workerIdleRssMb = statusKb(worker.proc.pid, 'VmRSS') / 1024;
  log(`${mode}: worker ${worker.proc.pid} ready after ${fmtInt(workerStartupMs)} ms (concurrency ${CONCURRENCY})`);

  const kb = await api<KbObject>('POST', '/knowledge_bases', {
    name: `bench-${mode}`,
    embedding_model: mode === 'lexical' ? 'none' : tiny!.modelId,
  });
  const cpuBefore = cpuSnapshot({ worker: worker.proc.pid, api: apiPid });
  const requestsBefore = apiRequests;

  // --- attach in batches of 500 (ids sorted: the queue runs them in this order, so the newest
  // completions come first in a listing ordered by file id, descending)
  const batches: Batch[] = [];
  const seen = new Map<string, { at: number; chunks: number; status: string; batch: Batch; error?: string }>();
  const t0 = performance.now();
  const ingestStartedAt = t0;
  let attachDone = false;
  const attaching = (async () => {
    for (let start = 0; start < fileIds.length; start += FILES_PER_BATCH) {
      const ids = fileIds.slice(start, start + FILES_PER_BATCH).sort();
      const sentAt = performance.now();
      const batch = await api<{ id: string }>('POST', `/knowledge_bases/${kb.id}/file_batches`, { file_ids: ids });
      batches.push({ id: batch.id, sentAt, fileIds: ids, seen: { completed: 0, failed: 0, cancelled: 0 }, done: false });
    }
    attachDone = true;
  })();
  attaching.catch(() => undefined);
  let attachMs = Number.NaN;
  void attaching.then(() => (attachMs = performance.now() - t0));

  // --- poll
  let pollPages = 0;
  const collect = async (batch: Batch, filter: 'completed' | 'failed' | 'cancelled', wanted: number): Promise<void> => {
    let found = 0;
    let after: string | null = null;
    for (;;) {
      const query: string = `filter=${filter}&order=desc&limit=100${after ? `&after=${after}` : ''}`;
      const page: ListPage<KbFileObject> = await api<ListPage<KbFileObject>>('GET', `/knowledge_bases/${kb.id}/file_batches/${batch.id}/files?${query}`);
      const arrived = performance.now();
      pollPages += 1;
      for (const file of page.data) {
        if (seen.has(file.id)) continue;
        seen.set(file.id, { at: arrived, chunks: file.chunk_count, status: file.status, batch, error: file.last_error?.message });
        batch.seen[filter] += 1;
        found += 1;
      }
      if (found >= wanted || !page.has_more || !page.last_id) return;
      after = page.last_id;
    }
  };
  const deadline = t0 + RUN_TIMEOUT_MS;
  let lastReport = t0;
  for (;;) {
    const tick = performance.now();
    for (const batch of [...batches]) {
      if (batch.done) continue;
      const status = await api<{ file_counts: FileCounts }>('GET', `/knowledge_bases/${kb.id}/file_batches/${batch.id}`);
      const counts = status.file_counts;
      for (const status of ['completed', 'failed', 'cancelled'] as const) {
        if (counts[status] > batch.seen[status]) await collect(batch, status, counts[status] - batch.seen[status]);
      }
      const finished = batch.seen.completed + batch.seen.failed + batch.seen.cancelled;
      if (counts.in_progress === 0 && finished >= batch.fileIds.length) batch.done = true;
    }
    if (attachDone && batches.every((batch) => batch.done)) break;
    if (performance.now() > deadline) throw new Error(`${mode}: ingestion did not finish within ${RUN_TIMEOUT_MS / 1000} s (${seen.size} of ${fileIds.length} files done)`);
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      log(`${mode}: ${seen.size} of ${fileIds.length} files done after ${((lastReport - t0) / 1000).toFixed(0)} s`);
    }
    const wait = POLL_MS - (performance.now() - tick);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  await attaching;
  const cpuAfter = cpuSnapshot({ worker: worker.proc.pid, api: apiPid });
  const pollRequests = apiRequests - requestsBefore - batches.length;
  const workerPeakRssMb = statusKb(worker.proc.pid, 'VmHWM') / 1024;

  const files = [...seen.values()];
  const lastAt = Math.max(...files.map((f) => f.at));
  const wallMs = lastAt - t0;
  const latencies = files.map((f) => f.at - f.batch.sentAt).sort((a, b) => a - b);
  const completed = files.filter((f) => f.status === 'completed');
  const chunks = completed.reduce((sum, f) => sum + f.chunks, 0);
  const failures = files.filter((f) => f.status !== 'completed');
  const kbAfter = await api<KbObject>('GET', `/knowledge_bases/${kb.id}`);
  const dims = mode === 'dense' ? tiny!.dimensions : null;
  const collection = mode === 'dense' ? collectionName(tiny!.modelId, dims) : collectionName(null, null);
  const qdrantPoints = await new QdrantChunkStore({ url: qdrant!.url }).count(collection, { projectId, kbId: kb.id });

  await stopChild(worker); // SIGTERM: graceful, and the CPU profile gets written
  const kbGetMs = await kbGetLatency(kb.id);
  const profileFile = PROFILE ? mainThreadProfile(profileDir) : undefined;
  const sortedJobs = [...jobMs].sort((a, b) => a - b);
  const cpu = Object.fromEntries(Object.keys(cpuAfter).map((key) => [key, cpuAfter[key]! - cpuBefore[key]!]));
  log(`${mode}: ${completed.length} completed, ${failures.length} not, ${chunks} chunks in ${(wallMs / 1000).toFixed(1)} s; running the baseline`);

  // --- the in-process baseline on the same files
  const baseline = await runBaseline(mode);
  const batched = baseline.variants.find((v) => v.name === 'batched')!;
  const baselineChunksPerS = (batched.chunks / batched.ms) * 1000;
  const chunksPerS = (chunks / wallMs) * 1000;
  return {
    mode,
    kbId: kb.id,
    embeddingModel: kb.embedding_model,
    docs: fileIds.length,
    completed: completed.length,
    failed: failures.length,
    firstFailure: failures[0]?.error,
    chunks,
    kbChunkCount: kbAfter.chunk_count,
    qdrantPoints,
    attachMs,
    wallMs,
    firstCompletedMs: Math.min(...files.map((f) => f.at)) - t0,
    docsPerS: (completed.length / wallMs) * 1000,
    chunksPerS,
    p50Ms: percentile(latencies, 50),
    p95Ms: percentile(latencies, 95),
    maxMs: latencies.at(-1) ?? Number.NaN,
    jobP50Ms: percentile(sortedJobs, 50),
    jobP95Ms: percentile(sortedJobs, 95),
    workerPeakRssMb,
    workerIdleRssMb,
    cpuMs: cpu,
    pollRequests,
    pollPages,
    profileFile,
    profileSkipMs: Math.floor(ingestStartedAt - spawnedAt),
    baseline,
    baselineChunksPerS,
    overheadRatio: chunksPerS / baselineChunksPerS,
    kbGetMs,
  };
}

/**
 * Median time of KnowledgeBaseStore.get — the pipeline calls it at the start of every job — run
 * directly against the benchmark's database, with nothing else running.
 */
async function kbGetLatency(kbId: string, calls = 41): Promise<number> {
  const db = new PostgresDatabase(database!.url, 1, () => undefined);
  try {
    const store = new KnowledgeBaseStore(db);
    await store.get(projectId, kbId); // connect
    const times: number[] = [];
    for (let i = 0; i < calls; i += 1) {
      const started = performance.now();
      await store.get(projectId, kbId);
      times.push(performance.now() - started);
    }
    return percentile(times.sort((a, b) => a - b), 50);
  } finally {
    await db.close();
  }
}

let apiPid: number | undefined;

/** The main thread's profile among those `--cpu-prof` wrote into `dir` (CPU.<date>.<time>.<pid>.<thread id>.<n>.cpuprofile). */
function mainThreadProfile(dir: string): string | undefined {
  try {
    const file = readdirSync(dir).find((name) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(name));
    return file && path.join(dir, file);
  } catch {
    return undefined;
  }
}

async function runBaseline(mode: Mode): Promise<Baseline> {
  let result: Baseline | undefined;
  const profileArgs = PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${path.join(PROFILE_DIR, `baseline-${mode}-${new Date().toISOString().replace(/[:.]/g, '-')}`)}`] : [];
  const child = await startChild(
    `baseline (${mode})`,
    [...profileArgs, '--import', 'tsx', path.join(BENCH_DIR, 'ingest-baseline.ts')],
    {
      BENCH_QDRANT_URL: qdrant!.url,
      BENCH_CORPUS: CORPUS,
      BENCH_LIMIT: String(LIMIT),
      BENCH_MODE: mode,
      BENCH_MODELS_DIR: tiny?.modelsDir ?? '',
      BENCH_MODEL_ID: tiny?.modelId ?? '',
      BENCH_CONCURRENCY: String(CONCURRENCY),
      BENCH_BATCH_SIZE: String(BATCH_SIZE),
    },
    (message) => 'baseline' in message,
    (message) => {
      if ('baseline' in message) result = message.baseline as Baseline;
    },
    RUN_TIMEOUT_MS,
  );
  await child.exited;
  if (!result) throw new Error(`the baseline printed no result:\n${child.stderrTail()}`);
  return result;
}

// ---------------------------------------------------------------- main

let exitCode = 0;
try {
  const corpus = loadCorpus(CORPUS, LIMIT);
  const wholeCorpus = corpus.length >= FULL_CORPUS_DOCS && LIMIT >= FULL_CORPUS_DOCS;
  log(`${corpus.length.toLocaleString('en-US')} documents from ${path.relative(REPO_ROOT, CORPUS)}, one file each (<_id>.txt = title + "\\n\\n" + text)`);

  if (PROFILE) mkdirSync(PROFILE_DIR, { recursive: true });
  const dataDir = path.join(tempDir, 'data');
  const modelsDir = path.join(tempDir, 'models');
  mkdirSync(dataDir, { recursive: true });
  if (!SKIP_DENSE) tiny = await createTinyEmbeddingModel(modelsDir, { name: 'cairn-bench/tiny-embedder' });
  const configFile = path.join(tempDir, 'models.json');
  // Declared like any local model (dtype q8, max_batch_size 32 by default); CAIRN_EMBEDDING_MODEL stays `none`.
  writeFileSync(configFile, JSON.stringify({ embeddings: tiny ? [{ id: tiny.modelId, provider: 'local', source: tiny.modelId }] : [] }));

  log('creating the database, starting Qdrant');
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  [database, qdrant] = await Promise.all([
    createTestDatabase(),
    ManagedQdrant.start({ storageDir: path.join(tempDir, 'qdrant'), logger: { ...quiet, error: (obj: object, msg: string) => log(`qdrant: ${msg} ${JSON.stringify(obj)}`) } }),
  ]);
  const sharedEnv: Record<string, string> = {
    DATABASE_URL: database.url,
    REDIS_URL,
    QDRANT_URL: qdrant.url,
    CAIRN_DATA_DIR: dataDir,
    CAIRN_CONFIG: configFile,
    CAIRN_MODELS_DIR: modelsDir,
    CAIRN_EMBEDDING_MODEL: 'none',
    CAIRN_ALLOW_MODEL_DOWNLOAD: 'false',
    CAIRN_QUEUE_NAME: queueName,
    CAIRN_SHUTDOWN_TIMEOUT_MS: '5000',
  };
  const apiChild = await startChild(
    'api',
    ['--import', 'tsx', path.join(BENCH_DIR, 'ingest-server.ts')],
    { ...sharedEnv, CAIRN_LOG_LEVEL: 'info', BENCH_LOG_FILE: path.join(tempDir, 'api.log') },
    (message) => typeof message.url === 'string',
    (message) => {
      if (typeof message.url !== 'string') return;
      apiUrl = message.url;
      apiKey = String(message.key);
      projectId = String(message.projectId);
    },
  );
  apiPid = apiChild.proc.pid;
  log(`API ${apiUrl} (pid ${apiPid}), Qdrant ${qdrant.url}, queue ${queueName}`);

  // --- upload everything once; both runs attach the same files
  log(`uploading ${corpus.length} files, ${UPLOAD_CONCURRENCY} at a time`);
  const fileIds: string[] = new Array(corpus.length);
  const uploadCpuBefore = cpuSnapshot({ worker: undefined, api: apiPid });
  const uploadStarted = performance.now();
  let nextUpload = 0;
  await Promise.all(
    Array.from({ length: UPLOAD_CONCURRENCY }, async () => {
      for (let i = nextUpload++; i < corpus.length; i = nextUpload++) fileIds[i] = await upload(corpus[i]!.filename, corpus[i]!.bytes);
    }),
  );
  const uploadMs = performance.now() - uploadStarted;
  const uploadCpuAfter = cpuSnapshot({ worker: undefined, api: apiPid });
  const uploadCpu = (party: string): number => uploadCpuAfter[party]! - uploadCpuBefore[party]!;
  const emptyKb = await api<KbObject>('POST', '/knowledge_bases', { name: 'bench-empty', embedding_model: 'none' });
  const emptyKbGetMs = await kbGetLatency(emptyKb.id);
  const uploadBytes = corpus.reduce((sum, file) => sum + file.bytes.length, 0);
  log(`uploaded in ${(uploadMs / 1000).toFixed(1)} s (${fmtInt((corpus.length / uploadMs) * 1000)} files/s)`);

  const modes: Mode[] = SKIP_DENSE ? ['lexical'] : ['lexical', 'dense'];
  const results: RunResult[] = [];
  for (const mode of modes) {
    log(`run ${results.length + 1}: ${mode}`);
    results.push(await ingestRun(mode, fileIds, sharedEnv));
  }
  const elapsedS = (performance.now() - runStarted) / 1000;

  // --- report
  const cpus = os.cpus();
  const lines: string[] = [];
  lines.push(
    `Ingestion — ${new Date().toISOString()} — ${cpus.length} × ${cpus[0]?.model.trim() ?? '?'}, node ${process.version}, ` +
      `${corpus.length.toLocaleString('en-US')} SciFact documents${QUICK ? ' (quick run)' : ''}, worker concurrency ${CONCURRENCY}, ${elapsedS.toFixed(0)} s in all`,
  );
  lines.push(
    'One document per file (<_id>.txt = title + "\\n\\n" + text); server mode: Postgres, Redis/BullMQ, managed Qdrant, API and one `cairn worker` as child processes.',
  );
  lines.push(
    `Upload (once, shared by the runs): ${corpus.length.toLocaleString('en-US')} files, ${fmt(uploadBytes / 1e6, 1)} MB in ${fmt(uploadMs / 1000, 1)} s ` +
      `(${fmtInt((corpus.length / uploadMs) * 1000)} files/s at ${UPLOAD_CONCURRENCY} at a time); CPU per file: API ${fmt(uploadCpu('api') / corpus.length)} ms, ` +
      `Postgres ${fmt(uploadCpu('postgres') / corpus.length)} ms, this process ${fmt(uploadCpu('bench') / corpus.length)} ms.`,
  );
  lines.push(`attach→completed (p50/p95) are upper bounds: polled every ${POLL_MS} ms; wall = first batch POST sent → last file seen completed.`);
  lines.push('job = one file inside the worker, from its "file ingested" log line (parse → Qdrant → completed; not the queue wait, nor the first two SELECTs).');
  lines.push('');
  lines.push(
    table(
      ['run', 'docs', 'chunks', 'attach s', 'wall s', 'docs/s', 'chunks/s', 'p50 s', 'p95 s', 'job p50/p95 ms', 'worker RSS MB idle/peak', 'baseline chunks/s', 'overhead ratio'],
      results.map((r) => [
        r.mode === 'lexical' ? 'lexical (none)' : `dense (${r.embeddingModel}, ${r.baseline.dimensions} d)`,
        `${fmtInt(r.completed)}${r.failed ? ` (+${r.failed} failed)` : ''}`,
        fmtInt(r.chunks),
        fmt(r.attachMs / 1000),
        fmt(r.wallMs / 1000, 1),
        fmt(r.docsPerS, 1),
        fmt(r.chunksPerS, 1),
        fmt(r.p50Ms / 1000, 1),
        fmt(r.p95Ms / 1000, 1),
        `${fmt(r.jobP50Ms, 0)} / ${fmt(r.jobP95Ms, 0)}`,
        `${fmtInt(r.workerIdleRssMb)} / ${fmtInt(r.workerPeakRssMb)}`,
        fmtInt(r.baselineChunksPerS),
        fmt(r.overheadRatio),
      ]),
      [false, true, true, true, true, true, true, true, true, true, true, true, true],
    ),
  );

  const checks: Array<{ run: string; goal: string; value: string; pass: boolean | undefined }> = [];
  for (const r of results) {
    checks.push({ run: r.mode, goal: `overhead ratio ≥ ${GOALS.overheadRatio}`, value: fmt(r.overheadRatio), pass: r.overheadRatio >= GOALS.overheadRatio });
  }
  const lexical = results.find((r) => r.mode === 'lexical')!;
  checks.push({
    run: 'lexical',
    goal: `whole corpus (${FULL_CORPUS_DOCS.toLocaleString('en-US')} docs) < ${GOALS.lexicalWholeCorpusS} s`,
    value: wholeCorpus ? `${fmt(lexical.wallMs / 1000, 1)} s (+ upload ${fmt(uploadMs / 1000, 1)} s)` : `n/a: ${corpus.length} docs in ${fmt(lexical.wallMs / 1000, 1)} s`,
    pass: wholeCorpus ? lexical.wallMs / 1000 < GOALS.lexicalWholeCorpusS && lexical.failed === 0 : undefined,
  });
  lines.push('');
  lines.push(
    table(
      ['run', 'goal', 'measured', 'result'],
      checks.map((c) => [c.run, c.goal, c.value, c.pass === undefined ? 'n/a' : c.pass ? 'PASS' : 'MISS']),
      [false, false, true, false],
    ),
  );

  lines.push('', 'Baselines in one process (same files, same modules; lanes = worker concurrency; stage times summed over the lanes):', '');
  lines.push(
    table(
      ['run', 'variant', 'chunks', 'wall s', 'chunks/s', 'parse+chunk ms', 'embed ms', 'BM25+points ms', 'upsert ms', 'markReady ms', 'delete ms', 'Qdrant writes'],
      results.flatMap((r) =>
        r.baseline.variants.map((v) => [
          r.mode,
          v.name === 'batched' ? `batched (${BATCH_SIZE})` : 'per-file (pipeline pattern)',
          fmtInt(v.chunks),
          fmt(v.ms / 1000, 2),
          fmtInt((v.chunks / v.ms) * 1000),
          fmtInt(v.parseChunkMs),
          fmtInt(v.embedMs),
          fmtInt(v.bm25Ms),
          fmtInt(v.upsertMs),
          fmtInt(v.markReadyMs),
          fmtInt(v.deleteMs),
          fmtInt(v.qdrantCalls),
        ]),
      ),
      [false, false, true, true, true, true, true, true, true, true, true, true],
    ),
  );

  lines.push('', 'CPU time during each run\'s ingestion window (user+sys from /proc; Postgres and Redis are shared servers, so other users\' load is in their figures):', '');
  const parties = ['worker', 'api', 'qdrant', 'postgres', 'redis', 'bench'] as const;
  lines.push(
    table(
      ['run', 'wall s', ...parties.map((p) => `${p} s`), 'total s', `of ${cpus.length} cores`, 'worker CPU ms/doc', 'poll requests (listings)'],
      results.map((r) => {
        const total = parties.reduce((sum, p) => sum + (r.cpuMs[p] || 0), 0);
        return [
          r.mode,
          fmt(r.wallMs / 1000, 1),
          ...parties.map((p) => fmt(r.cpuMs[p]! / 1000, 1)),
          fmt(total / 1000, 1),
          `${fmt((total / (r.wallMs * cpus.length)) * 100, 0)}%`,
          fmt(r.cpuMs.worker! / r.completed, 2),
          `${fmtInt(r.pollRequests)} (${fmtInt(r.pollPages)})`,
        ];
      }),
      [false, true, true, true, true, true, true, true, true, true, true, true],
    ),
  );
  lines.push('The poller\'s cost is in the api column and part of the postgres one: every listing page also runs KnowledgeBaseStore.get.');

  const warnings: string[] = [];
  for (const r of results) {
    if (r.failed > 0) warnings.push(`${r.mode}: ${r.failed} files did not complete; first error: ${r.firstFailure}`);
    if (r.kbChunkCount !== r.chunks || r.qdrantPoints !== r.chunks) {
      warnings.push(`${r.mode}: chunk counts disagree: files ${r.chunks}, knowledge base ${r.kbChunkCount}, Qdrant points ${r.qdrantPoints}`);
    }
    for (const v of r.baseline.variants) {
      if (v.chunks !== r.chunks) warnings.push(`${r.mode}: the baseline (${v.name}) made ${v.chunks} chunks, the pipeline ${r.chunks}`);
    }
  }
  lines.push(
    '',
    `KnowledgeBaseStore.get, which every job runs first (it aggregates counts over all of the KB's files), median: ` +
      `${fmt(emptyKbGetMs)} ms on an empty KB; ${results.map((r) => `${fmt(r.kbGetMs)} ms on the ${r.mode} KB (${fmtInt(r.docs)} files)`).join('; ')}.`,
  );
  lines.push('', ...results.map((r) => `${r.mode}: first file completed after ${fmt(r.firstCompletedMs / 1000, 2)} s; slowest attach→completed ${fmt(r.maxMs / 1000, 1)} s; ` +
    `chunks: files ${fmtInt(r.chunks)} = knowledge base ${fmtInt(r.kbChunkCount)} = Qdrant ${fmtInt(r.qdrantPoints)}; baseline model+tokenizer load ${fmtInt(r.baseline.loadMs)} ms (not timed)`));
  if (warnings.length > 0) lines.push('', ...warnings.map((w) => `WARNING: ${w}`));
  if (PROFILE) {
    lines.push('', `CPU profiles (one directory per worker and baseline child) in ${PROFILE_DIR}. The workers' main threads, from the first attach on:`);
    for (const r of results) if (r.profileFile) lines.push(`  node --import tsx bench/profile-top.ts ${r.profileFile} --skip-ms=${r.profileSkipMs}`);
  }
  process.stdout.write(`\n${lines.join('\n')}\n`);

  if (JSON_FILE) {
    writeFileSync(
      JSON_FILE,
      `${JSON.stringify({ date: new Date().toISOString(), quick: QUICK, docs: corpus.length, concurrency: CONCURRENCY, pollMs: POLL_MS, uploadMs, emptyKbGetMs, machine: { cpus: cpus.length, model: cpus[0]?.model.trim(), node: process.version }, results, checks }, null, 2)}\n`,
    );
  }
  if (warnings.some((w) => w.includes('did not complete')) || (STRICT && checks.some((c) => c.pass === false))) exitCode = 1;
} catch (error) {
  if (!aborting) log(`benchmark failed: ${(error as Error).stack ?? String(error)}`);
  exitCode = 1;
} finally {
  if (!aborting) {
    log('cleaning up');
    await cleanup();
  }
}
if (!aborting) process.exit(exitCode);
