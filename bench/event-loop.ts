/**
 * Event-loop benchmark: `npm run bench:event-loop` (issue 9 item 3). Does ingesting huge files, or a chat
 * request with a huge message, stall the API for everyone else?
 *
 * Starts an embedded Cairn as a child process (bench/event-loop-server.ts: PGlite, managed Qdrant,
 * CAIRN_EMBEDDING_MODEL=none, the `extractive` chat model), writes three files under the 100 MiB upload
 * limit to a temp dir — a 90 MB CSV, a 95 MB single-line text, a 90 MB JSON array — and measures, with two
 * probes running continuously (each request sent `--gap-ms` after the previous answer):
 *   - `healthz`: GET /healthz;
 *   - `chat`: POST /v1/chat/completions, model `extractive`, grounded in a one-file knowledge base;
 * in three phases:
 *   1. idle: the probes alone for `--idle-s` seconds (the baseline);
 *   2. ingest: the three files attached at once to a lexical-only knowledge base, until each is
 *      `completed` or `failed` (uploads happen before, unmeasured);
 *   3. big chat: two chat requests at once, each with a 15 MB user message and `knowledge_bases`,
 *      while `healthz` keeps probing; their own latency is reported too.
 * and the API process's peak RSS (VmHWM, worker threads included) over the whole run.
 *
 * Targets: healthz and chat p99 < 100 ms while ingesting; peak RSS under `--rss-bound-mb` (2,000: docs/configuration.md).
 *
 * Options: --idle-s=N (10) --gap-ms=N (20) --timeout-s=N (900: ingestion stops being waited for, and is
 * reported unfinished, after this) --json=file --keep-files
 */
import { spawn } from 'node:child_process';
import { createWriteStream, openAsBlob, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { option, truthy } from './options.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const idleSeconds = Number(option('idle-s', 'BENCH_IDLE_S') ?? 10);
const gapMs = Number(option('gap-ms', 'BENCH_GAP_MS') ?? 20);
const timeoutMs = Number(option('timeout-s', 'BENCH_TIMEOUT_S') ?? 900) * 1000;
const rssBoundMb = Number(option('rss-bound-mb', 'BENCH_RSS_BOUND_MB') ?? 2000);
const jsonOut = option('json', 'BENCH_JSON');
const keepFiles = truthy(option('keep-files', 'BENCH_KEEP_FILES'));
const TARGET_P99_MS = 100;

// ---------------------------------------------------------------- hostile-size files

const WORDS = (
  'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo ' +
  'sierra tango uniform victor whiskey xray yankee zulu harbor lantern meadow quartz river summit timber valley ' +
  'granite willow ember falcon glacier horizon island jasmine kettle marble nectar orchard pebble quiver saddle'
).split(' ');

function words(seed: number, count: number): string {
  const out: string[] = [];
  let x = seed * 2654435761;
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(WORDS[x % WORDS.length]!);
  }
  return out.join(' ');
}

/** Writes `line(i)` for i = 0, 1, … until the file has `bytes` bytes (cut at the last whole line). */
async function writeLines(file: string, bytes: number, head: string, line: (i: number) => string, tail = ''): Promise<number> {
  const out = createWriteStream(file);
  let written = 0;
  let buffer = head;
  for (let i = 0; ; i++) {
    const next = line(i);
    if (written + buffer.length + next.length + tail.length > bytes) break;
    buffer += next;
    if (buffer.length > 1 << 20) {
      written += buffer.length;
      if (!out.write(buffer)) await new Promise((resolve) => out.once('drain', () => resolve(undefined)));
      buffer = '';
    }
  }
  buffer += tail;
  written += buffer.length;
  out.end(buffer);
  await new Promise((resolve, reject) => out.once('finish', () => resolve(undefined)).once('error', reject));
  return written;
}

async function makeFiles(dir: string): Promise<Array<{ file: string; name: string }>> {
  const csv = path.join(dir, 'big.csv');
  await writeLines(csv, 90e6, 'id,name,city,score,note\n', (i) => `${i},name ${i % 1000},City ${i % 97},${i % 100},${words(i, 8)}\n`);
  const text = path.join(dir, 'big.txt');
  await writeLines(text, 95e6, '', (i) => `${words(i, 12)}. `);
  const json = path.join(dir, 'big.json');
  await writeLines(json, 90e6, '[', (i) => `${i ? ',' : ''}{"id":${i},"title":"${words(i, 3)}","tags":["t${i % 10}","u${i % 7}"],"body":"${words(i + 1, 10)}"}`, ']');
  return [csv, text, json].map((file) => ({ file, name: path.basename(file) }));
}

// ---------------------------------------------------------------- the server and its API

interface Server {
  url: string;
  key: string;
  pid: number;
  stop(): Promise<void>;
}

async function startCairn(): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench/event-loop-server.ts')], {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the Cairn child exited with ${code} before listening`)));
  });
  const { url, key } = JSON.parse(first) as { url: string; key: string };
  return {
    url,
    key,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function memoryOf(pid: number): { rssMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { rssMb: Math.round(kb('VmRSS') / 1024), peakMb: Math.round(kb('VmHWM') / 1024) };
}

class Api {
  constructor(private readonly server: Server) {}

  async call<T>(method: string, route: string, body?: unknown): Promise<T> {
    // A keep-alive connection the server closed while we were about to reuse it resets once; GETs may retry.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.callOnce<T>(method, route, body);
      } catch (error) {
        if (method !== 'GET' || attempt >= 3 || !(error instanceof TypeError)) throw error;
      }
    }
  }

  private async callOnce<T>(method: string, route: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.server.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${this.server.key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${route} → ${response.status}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }

  async upload(file: string, name: string): Promise<string> {
    const form = new FormData();
    form.set('purpose', 'assistants');
    form.set('file', await openAsBlob(file), name);
    const response = await fetch(`${this.server.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${this.server.key}` }, body: form });
    const body = (await response.json()) as { id: string };
    if (!response.ok) throw new Error(`upload of ${name} → ${response.status}: ${JSON.stringify(body)}`);
    return body.id;
  }

  chat(kbId: string, question: string): Promise<unknown> {
    return this.call('POST', '/v1/chat/completions', { model: 'extractive', messages: [{ role: 'user', content: question }], knowledge_bases: [kbId] });
  }
}

type FileState = { status: string; chunk_count?: number; last_error?: { message: string } | null };

async function waitForFiles(api: Api, kbId: string, fileIds: string[]): Promise<Map<string, FileState & { seconds: number }>> {
  const started = performance.now();
  const done = new Map<string, FileState & { seconds: number }>();
  while (done.size < fileIds.length) {
    if (performance.now() - started > timeoutMs) {
      // Report what was measured: the unfinished files are listed as such.
      for (const id of fileIds.filter((fileId) => !done.has(fileId))) done.set(id, { status: `in_progress after ${timeoutMs / 1000} s (timeout)`, seconds: NaN });
      break;
    }
    for (const id of fileIds.filter((fileId) => !done.has(fileId))) {
      const state = await api.call<FileState>('GET', `/v1/knowledge_bases/${kbId}/files/${id}`);
      if (state.status !== 'in_progress') done.set(id, { ...state, seconds: Math.round((performance.now() - started) / 100) / 10 });
    }
    await sleep(500);
  }
  return done;
}

// ---------------------------------------------------------------- probes

class Probe {
  readonly latencies: number[] = [];
  errors = 0;
  private running = true;
  private readonly loop: Promise<void>;

  constructor(send: () => Promise<unknown>) {
    this.loop = (async () => {
      while (this.running) {
        const started = performance.now();
        try {
          await send();
          this.latencies.push(performance.now() - started);
        } catch {
          this.errors += 1;
        }
        await sleep(gapMs);
      }
    })();
  }

  async stop(): Promise<Stats> {
    this.running = false;
    await this.loop;
    return summarise(this.latencies, this.errors);
  }
}

interface Stats {
  n: number;
  errors: number;
  p50: number;
  p99: number;
  max: number;
}

function summarise(latencies: number[], errors = 0): Stats {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number): number => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! : NaN);
  const round = (ms: number): number => Math.round(ms * 10) / 10;
  return { n: sorted.length, errors, p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted.at(-1) ?? NaN) };
}

// ---------------------------------------------------------------- the run

const dir = await mkdtemp(path.join(tmpdir(), 'cairn-bench-loop-files-'));
const server = await startCairn();
try {
  const api = new Api(server);
  const healthz = (): Promise<unknown> => fetch(`${server.url}/healthz`).then((response) => response.text());

  process.stderr.write('writing the files…\n');
  const files = await makeFiles(dir);
  for (const { file } of files) process.stderr.write(`  ${path.basename(file)}: ${((await stat(file)).size / 1e6).toFixed(1)} MB\n`);

  // A small knowledge base for the chat probe.
  const small = await api.call<{ id: string }>('POST', '/v1/knowledge_bases', { name: 'probe', embedding_model: 'none' });
  const factsPath = path.join(dir, 'facts.txt');
  writeFileSync(factsPath, 'The capital of Lumeria is Ostrava Vale. Lumeria exports tea and copper.\n\nIts river is the Sel.');
  const factsId = await api.upload(factsPath, 'facts.txt');
  await api.call('POST', `/v1/knowledge_bases/${small.id}/files`, { file_id: factsId });
  await waitForFiles(api, small.id, [factsId]);
  const chat = (): Promise<unknown> => api.chat(small.id, 'What is the capital of Lumeria?');

  process.stderr.write(`idle probes for ${idleSeconds} s…\n`);
  const idleRss = memoryOf(server.pid);
  let probes = [new Probe(healthz), new Probe(chat)];
  await sleep(idleSeconds * 1000);
  const [idleHealthz, idleChat] = await Promise.all(probes.map((probe) => probe.stop()));

  process.stderr.write('uploading…\n');
  const fileIds = [];
  for (const { file, name } of files) fileIds.push(await api.upload(file, name));
  const big = await api.call<{ id: string }>('POST', '/v1/knowledge_bases', { name: 'big', embedding_model: 'none' });

  process.stderr.write('ingesting, probing…\n');
  probes = [new Probe(healthz), new Probe(chat)];
  const ingestStarted = performance.now();
  for (const id of fileIds) await api.call('POST', `/v1/knowledge_bases/${big.id}/files`, { file_id: id });
  const outcome = await waitForFiles(api, big.id, fileIds);
  const ingestSeconds = Math.round((performance.now() - ingestStarted) / 100) / 10;
  const [ingestHealthz, ingestChat] = await Promise.all(probes.map((probe) => probe.stop()));
  const afterIngest = memoryOf(server.pid);

  process.stderr.write('two 15 MB chat messages…\n');
  const huge = `${words(7, 2_600_000).slice(0, 15e6 - 40)} What is the capital of Lumeria?`;
  const healthzProbe = new Probe(healthz);
  const bigChats = await Promise.all(
    [0, 1].map(async () => {
      const started = performance.now();
      let error: string | undefined;
      await api.chat(small.id, huge).catch((cause: Error) => (error = cause.message.slice(0, 120)));
      return { ms: Math.round(performance.now() - started), error };
    }),
  );
  const bigChatHealthz = await healthzProbe.stop();
  const final = memoryOf(server.pid);

  // ---------------------------------------------------------------- report
  const rows: Array<[string, string, Stats]> = [
    ['idle', 'healthz', idleHealthz!],
    ['idle', 'chat', idleChat!],
    ['ingest', 'healthz', ingestHealthz!],
    ['ingest', 'chat', ingestChat!],
    ['2× 15 MB chat', 'healthz', bigChatHealthz],
  ];
  const pad = (value: unknown, width: number): string => String(value).padStart(width);
  console.log('\n| phase          | probe   |     n | errors | p50 ms | p99 ms | max ms | p99 ÷ idle |');
  console.log('|----------------|---------|------:|-------:|-------:|-------:|-------:|-----------:|');
  for (const [phase, probe, stats] of rows) {
    const idle = probe === 'healthz' ? idleHealthz! : idleChat!;
    const ratio = phase === 'idle' ? '–' : `${(stats.p99 / idle.p99).toFixed(1)}×`;
    console.log(`| ${phase.padEnd(14)} | ${probe.padEnd(7)} | ${pad(stats.n, 5)} | ${pad(stats.errors, 6)} | ${pad(stats.p50, 6)} | ${pad(stats.p99, 6)} | ${pad(stats.max, 6)} | ${pad(ratio, 10)} |`);
  }
  console.log('\n| file | status | chunks | seconds after attach | last_error |');
  console.log('|------|--------|-------:|---------------------:|------------|');
  fileIds.forEach((id, index) => {
    const state = outcome.get(id)!;
    console.log(`| ${files[index]!.name} | ${state.status} | ${state.chunk_count ?? '–'} | ${state.seconds} | ${state.last_error?.message ?? ''} |`);
  });
  console.log(`\ningestion of the three files: ${ingestSeconds} s`);
  console.log(`15 MB chat requests: ${bigChats.map((chatResult) => `${chatResult.ms} ms${chatResult.error ? ` (${chatResult.error})` : ''}`).join(', ')}`);
  console.log(`API RSS: idle ${idleRss.rssMb} MB, after ingestion ${afterIngest.rssMb} MB, peak ${final.peakMb} MB (bound ${rssBoundMb} MB)`);
  const goals: Array<[string, boolean]> = [
    [`healthz p99 while ingesting < ${TARGET_P99_MS} ms`, ingestHealthz!.p99 < TARGET_P99_MS],
    [`chat p99 while ingesting < ${TARGET_P99_MS} ms`, ingestChat!.p99 < TARGET_P99_MS],
    [`peak RSS < ${rssBoundMb} MB`, final.peakMb < rssBoundMb],
    ['every file completed', [...outcome.values()].every((state) => state.status === 'completed')],
  ];
  for (const [goal, met] of goals) console.log(`${met ? 'PASS' : 'MISS'}  ${goal}`);
  if (jsonOut) {
    writeFileSync(jsonOut, JSON.stringify({ rows, outcome: [...outcome.entries()], ingestSeconds, bigChats, idleRss, afterIngest, final, goals }, null, 2));
  }
} finally {
  await server.stop();
  if (!keepFiles) await rm(dir, { recursive: true, force: true });
}
