/**
 * Retrieval benchmark: `npm run bench:retrieval` (add `-- --quick` for a 10k-chunk smoke run).
 *
 * Setup, all on 127.0.0.1 (server mode unless --db=pglite):
 *   - a fresh PostgreSQL database (createTestDatabase: 127.0.0.1:5432, dropped at exit),
 *   - a Qdrant started from node_modules (ManagedQdrant) in a temp dir, owned by this process,
 *   - the stub upstream (bench/stub-server.ts → test/helpers/stub-upstream.ts) in a child process,
 *   - Cairn (bench/retrieval-server.ts: loadConfig → createServices → startServer) in a child process,
 *     with DATABASE_URL and QDRANT_URL pointing at the above and one model, `bench-model`, on the stub.
 *
 * The knowledge base (lexical-only, BM25): created through the HTTP API (`embedding_model: "none"`).
 * Synthetic documents are made of real text (bench/retrieval-corpus.ts: paragraphs of consecutive
 * SciFact sentences, shuffled into new documents, seeded). The first few documents go through the
 * real ingestion path (POST /v1/files, POST /v1/knowledge_bases/{id}/files, in-process queue,
 * pipeline); their stored payload is compared with the one this script writes. The rest, up to
 * exactly --chunks chunks (100,000), are chunked by the real chunker (parseDocument → chunkDocument,
 * auto strategy: 400 WordPiece tokens, 80 overlap), encoded by the real Bm25Encoder and written by the
 * real QdrantChunkStore into `cairn_lexical`, in this process, with the pipeline's payload
 * (project_id and kb_id from the API, a generation per file, `ready: true`). Their files exist only
 * in Qdrant: no `files` / `knowledge_base_files` rows (search does not read them). Then the run
 * waits until Qdrant's optimizers are idle (collection status green).
 *
 * Measurements (concurrency 1, undici Pool; targets take turns in rounds, the order rotating each
 * round, a warm-up before every block):
 *   cairn-miss      POST /v1/knowledge_bases/{id}/search {query, max_num_results: 10}; queries: the
 *                   other 1,055 distinct SciFact queries, cycled: more distinct queries than the
 *                   retriever's 1,000-entry LRU of query encodings, so every one is encoded afresh
 *   cairn-hit       the same with 50 SciFact test queries, repeated: always in that LRU
 *   qdrant-client   QdrantChunkStore.search in this process, the call the retriever makes, with the
 *                   same sparse vectors (encoded beforehand): Qdrant plus its JS client
 *   qdrant-gzip     the same query through a QdrantClient without QdrantChunkStore's `accept-encoding:
 *                   identity` header (373006e), i.e. fetch's default gzip: Qdrant then answers gzip'd and chunked,
 *                   and on loopback most such answers stall ~40 ms
 *   qdrant-http     the same query as a bare HTTP request (undici), with Qdrant's own `time` for it
 *   postgres-kb     KnowledgeBaseStore.getSearchable from this process: the lookup every search does
 *                   first (--db=postgres only)
 *   cairn-models    GET /v1/models: Cairn's floor (HTTP, auth, access log) on a trivial route
 * Chat: `POST /v1/chat/completions` (non-streaming, stub upstream) without and with
 * `knowledge_bases: [kbId]`, the same question for both requests of a pair, the pair's order
 * alternating, questions cycling through the cache-miss set; p50/p95 and `x-cairn-retrieval-ms`.
 * Goal: search p95 ≤ 25 ms (cache miss). When it is missed (or --profile=on), a further pass of
 * cache-miss searches runs with V8's CPU profiler on in the Cairn child, summarised by
 * bench/profile-top.ts.
 *
 * Before building the KB and again before measuring, the run waits (up to --wait-max-s, 900 s) until
 * no process whose command line contains --wait-for (default `bench/ingest.ts`) exists, so that the
 * two benchmarks do not distort each other.
 *
 * Options (flag or environment variable):
 *   --quick                 BENCH_QUICK=1          10,000 chunks and shorter runs (~1 min), for smoke-testing
 *   --chunks=N              BENCH_CHUNKS           chunks in the knowledge base (default 100,000)
 *   --queries=N             BENCH_QUERIES          measured requests per search target (default 1,000)
 *   --chat=N                BENCH_CHAT             measured chat requests per variant (default 500)
 *   --db=postgres|pglite    BENCH_DB               Cairn's database (default postgres: server mode)
 *   --profile=auto|on|off   BENCH_PROFILE          profile pass (default auto: when the goal is missed)
 *   --wait-for=PATTERN      BENCH_WAIT_FOR         see above; `--wait-for=` (empty) disables the wait
 *   --wait-max-s=N          BENCH_WAIT_MAX_S       longest wait, each time (default 900)
 *   --dataset=DIR           BENCH_DATASET          BEIR SciFact directory (default ../shared/datasets/scifact)
 *   --seed=N                BENCH_SEED             seed of the synthetic documents (default 1)
 *   --json=file             BENCH_JSON             also write the results as JSON
 *   --strict                BENCH_STRICT=1         exit 1 when the goal is missed
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { QdrantClient } from '@qdrant/js-client-rest';
import { LRUCache } from 'lru-cache';
import { Pool } from 'undici';
import { newId } from '../src/ids.ts';
import { mergeChunks } from '../src/rag/merge-chunks.ts';
import type { RetrievedChunk } from '../src/rag/retriever.ts';
import { chunkDocument, resolveChunking } from '../src/ingest/chunker.ts';
import { parseDocument } from '../src/ingest/parsers/index.ts';
import { WordPieceTokenCounter } from '../src/ingest/token-counter.ts';
import { openDatabase, type Database } from '../src/store/database.ts';
import { KnowledgeBaseStore } from '../src/store/knowledge-bases.ts';
import { Bm25Encoder, type SparseVector } from '../src/vectors/bm25-encoder.ts';
import { ManagedQdrant } from '../src/vectors/managed-qdrant.ts';
import { LEXICAL_COLLECTION, QdrantChunkStore, type ChunkPayload, type ChunkPoint } from '../src/vectors/qdrant-chunk-store.ts';
import { scopeConditions } from '../src/vectors/qdrant-filters.ts';
import { createTestDatabase, type TestDatabase } from '../test/helpers/harness.ts';
import { loadAbstracts, loadQrelQueryIds, loadQueries, seededRandom, syntheticDocuments } from './retrieval-corpus.ts';
import {
  command, cpuMs, fmt, fmtInt, killChildrenNow, otherProcesses, startChild, stopChildren, summarise, table, waitUntilGone, type Child,
} from './retrieval-util.ts';
import { option, truthy } from './options.ts';

// ---------------------------------------------------------------- options

const integer = (value: string | undefined, fallback: number): number => {
  if (value === undefined) return fallback;
  const n = Number(value.replace(/[_,]/g, ''));
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got ${value}`);
  return n;
};

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

const QUICK = truthy(option('quick', 'BENCH_QUICK'));
const STRICT = truthy(option('strict', 'BENCH_STRICT'));
const JSON_FILE = option('json', 'BENCH_JSON');
const DB = option('db', 'BENCH_DB') ?? 'postgres';
if (!['postgres', 'pglite'].includes(DB)) throw new Error(`--db must be postgres or pglite, not ${DB}`);
const PROFILE = ((value) => (value === '1' ? 'on' : value))(option('profile', 'BENCH_PROFILE') ?? 'auto');
if (!['auto', 'on', 'off'].includes(PROFILE)) throw new Error(`--profile must be auto, on or off, not ${PROFILE}`);
/** `--wait-for=` (empty) disables the wait. */
const WAIT_FOR = option('wait-for', 'BENCH_WAIT_FOR') ?? 'bench/ingest.ts';
const WAIT_MAX_MS = integer(option('wait-max-s', 'BENCH_WAIT_MAX_S'), 900) * 1000;
const DATASET = path.resolve(root, option('dataset', 'BENCH_DATASET') ?? '../shared/datasets/scifact');
if (!existsSync(path.join(DATASET, 'corpus.jsonl'))) {
  console.error(`bench:retrieval: no BEIR SciFact dataset at ${DATASET}: pass --dataset=DIR or set BENCH_DATASET (the default, ../shared/datasets/scifact, is the team's shared copy)`);
  process.exit(2);
}
const SEED = integer(option('seed', 'BENCH_SEED'), 1);
const CHUNKS = integer(option('chunks', 'BENCH_CHUNKS'), QUICK ? 10_000 : 100_000);
const QUERIES = integer(option('queries', 'BENCH_QUERIES'), QUICK ? 200 : 1_000);
const CHAT = integer(option('chat', 'BENCH_CHAT'), QUICK ? 100 : 500);

const PLAN = {
  rounds: 4,
  searchWarmup: QUICK ? 10 : 25,
  chatWarmupPairs: QUICK ? 10 : 25,
  profileQueries: QUICK ? 200 : 600,
  realFiles: 3,
  /** Everything after the waits: KB build, optimisation, measurements, cleanup. */
  runBudgetMs: (QUICK ? 10 : 30) * 60_000,
};
const GOAL_P95_MS = 25;
const MAX_RESULTS = 10;
/** The retriever's LRU of query encodings (src/rag/retriever.ts, CACHED_QUERIES). */
const RETRIEVER_CACHE = 1_000;
const HIT_SET_SIZE = 50;

// ---------------------------------------------------------------- lifecycle

const runStarted = performance.now();
const log = (message: string): void => void process.stderr.write(`[${((performance.now() - runStarted) / 1000).toFixed(1)}s] ${message}\n`);
const tempDir = mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-retrieval-'));
let qdrant: ManagedQdrant | undefined;
let database: TestDatabase | undefined;
let qdrantStopped = false;
let aborting = false;

async function cleanup(): Promise<void> {
  await stopChildren();
  await qdrant?.stop().then(
    () => void (qdrantStopped = true),
    (error: Error) => log(`could not stop Qdrant: ${error.message}`),
  );
  await database?.drop().catch((error: Error) => log(`could not drop the database: ${error.message}`));
  rmSync(tempDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
}

process.once('exit', () => {
  killChildrenNow(); // last resort
  const pid = qdrant?.pid;
  if (pid !== undefined && !qdrantStopped) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});
const abort = (message: string, code: number): void => {
  if (aborting) return;
  aborting = true;
  process.stderr.write(`\n${message}\n`);
  void cleanup().finally(() => process.exit(code));
};
process.on('SIGINT', () => abort('SIGINT: stopping the benchmark', 130));
process.on('SIGTERM', () => abort('SIGTERM: stopping the benchmark', 143));
const deadlineMs = PLAN.runBudgetMs + (WAIT_FOR ? 2 * WAIT_MAX_MS : 0);
setTimeout(() => abort(`benchmark exceeded its ${Math.round(deadlineMs / 1000)} s budget; aborting`, 1), deadlineMs).unref();

const waits: Array<{ before: string; waitedS: number; stillRunning: boolean }> = [];
/** Phases during which the other benchmark was seen running (checked after every measured block). */
const overlaps = new Set<string>();
function checkOverlap(phase: string): void {
  if (WAIT_FOR && otherProcesses(WAIT_FOR).length > 0 && !overlaps.has(phase)) {
    overlaps.add(phase);
    log(`  ${WAIT_FOR} is running (again) during ${phase}: these numbers are distorted`);
  }
}
async function waitForOtherBenchmark(before: string): Promise<void> {
  if (!WAIT_FOR) return;
  const { waitedMs, stillRunning } = await waitUntilGone(WAIT_FOR, WAIT_MAX_MS, log);
  waits.push({ before, waitedS: Math.round(waitedMs / 1000), stillRunning });
  if (waitedMs > 5_000) log(`waited ${Math.round(waitedMs / 1000)} s for ${WAIT_FOR} before ${before}`);
}

// ---------------------------------------------------------------- queries

const allQueries = (() => {
  const seen = new Set<string>();
  return loadQueries(path.join(DATASET, 'queries.jsonl'))
    .map((query) => ({ ...query, text: query.text.trim() }))
    .filter((query) => query.text && !seen.has(query.text) && seen.add(query.text));
})();
const testIds = loadQrelQueryIds(path.join(DATASET, 'qrels', 'test.tsv'));
const hitSet = allQueries.filter((query) => testIds.has(query.id)).slice(0, HIT_SET_SIZE).map((query) => query.text);
const missSet = allQueries.map((query) => query.text).filter((text) => !hitSet.includes(text));
if (missSet.length <= RETRIEVER_CACHE) throw new Error(`need more than ${RETRIEVER_CACHE} distinct queries for the cache-miss run, have ${missSet.length}`);

/** Mirrors the retriever's LRU over every query Cairn encodes, to report how many were cache hits. */
const lru = new LRUCache<string, true>({ max: RETRIEVER_CACHE });
function retrieverSees(query: string): boolean {
  const hit = lru.get(query) !== undefined;
  if (!hit) lru.set(query, true);
  return hit;
}
/** Endless cycles over a list, each with its own position. */
function cycle<T>(items: T[]): () => T {
  let i = 0;
  return () => items[i++ % items.length]!;
}

// ---------------------------------------------------------------- HTTP

interface Http {
  pool: Pool;
  headers: Record<string, string>;
}

async function requestJson(http: Http, method: 'GET' | 'POST', pathname: string, body?: unknown): Promise<{ status: number; json: any; headers: Record<string, unknown> }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const response = await http.pool.request({ method, path: pathname, headers: http.headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.statusCode, json, headers: response.headers };
}

// ---------------------------------------------------------------- knowledge base

interface KbBuild {
  kbId: string;
  realFiles: number;
  realChunks: number;
  directFiles: number;
  directChunks: number;
  totalChunks: number;
  pointsInQdrant: number;
  words: { p10: number; p50: number; p90: number; mean: number; min: number; max: number };
  termsPerChunk: number;
  textMb: number;
  buildS: number;
  optimiseS: number;
  segments: number;
  payloadKeys: string[];
}

async function waitForFile(cairn: Http, kbId: string, fileId: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { status, json } = await requestJson(cairn, 'GET', `/v1/knowledge_bases/${kbId}/files/${fileId}`);
    if (status !== 200) throw new Error(`GET file ${fileId}: HTTP ${status} ${JSON.stringify(json)}`);
    if (json.status === 'completed') return;
    if (json.status !== 'in_progress') throw new Error(`file ${fileId} ended ${json.status}: ${JSON.stringify(json.last_error)}`);
    if (Date.now() > deadline) throw new Error(`file ${fileId} still in progress after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function buildKnowledgeBase(cairnUrl: string, cairn: Http, projectId: string, qdrantUrl: string, store: QdrantChunkStore): Promise<KbBuild> {
  const started = performance.now();
  const created = await requestJson(cairn, 'POST', '/v1/knowledge_bases', { name: 'bench-retrieval', embedding_model: 'none' });
  if (created.status !== 200 || created.json.embedding_model !== 'none') throw new Error(`creating the KB: HTTP ${created.status} ${JSON.stringify(created.json)}`);
  const kbId = created.json.id as string;
  log(`knowledge base ${kbId} created (lexical-only) in project ${projectId}`);

  const abstracts = loadAbstracts(path.join(DATASET, 'corpus.jsonl'));
  const documents = syntheticDocuments(abstracts, seededRandom(SEED));
  const nextDocument = (): string => documents.next().value as string;

  // 1. A few files through the real ingestion path, to compare payloads with (and part of the KB).
  const realFileIds: string[] = [];
  for (let i = 0; i < PLAN.realFiles; i++) {
    const form = new FormData();
    form.append('purpose', 'assistants');
    form.append('file', new Blob([nextDocument()], { type: 'text/plain' }), `synthetic-api-${i}.txt`);
    const upload = await fetch(`${cairnUrl}/v1/files`, { method: 'POST', headers: { authorization: cairn.headers.authorization! }, body: form });
    const file = (await upload.json()) as { id?: string };
    if (upload.status !== 200 || !file.id) throw new Error(`upload: HTTP ${upload.status} ${JSON.stringify(file)}`);
    const attached = await requestJson(cairn, 'POST', `/v1/knowledge_bases/${kbId}/files`, { file_id: file.id });
    if (attached.status !== 200) throw new Error(`attach: HTTP ${attached.status} ${JSON.stringify(attached.json)}`);
    realFileIds.push(file.id);
  }
  for (const fileId of realFileIds) await waitForFile(cairn, kbId, fileId, 60_000);
  const realChunks = await store.count(LEXICAL_COLLECTION, { projectId, kbId });
  const client = new QdrantClient({ url: qdrantUrl, checkCompatibility: false });
  const sample = await client.scroll(LEXICAL_COLLECTION, {
    filter: { must: [...scopeConditions(projectId, kbId), { key: 'file_id', match: { value: realFileIds[0]! } }] },
    limit: 1,
    with_payload: true,
  });
  const realPayload = sample.points[0]?.payload as Record<string, unknown> | undefined;
  if (!realPayload) throw new Error('no point of the ingested file found in Qdrant');
  log(`${PLAN.realFiles} files ingested through the API: ${realChunks} chunks`);

  // 2. The rest: the real chunker, BM25 encoder and chunk store, written from here.
  const counter = await WordPieceTokenCounter.load(); // as services.ts loads it for the pipeline
  const sizes = resolveChunking({ type: 'auto' }, undefined);
  const bm25 = new Bm25Encoder();
  await store.ensureCollection(LEXICAL_COLLECTION, null);
  const wordCounts = new Uint16Array(CHUNKS);
  let words = 0;
  let terms = 0;
  let textBytes = 0;
  let directChunks = 0;
  let directFiles = 0;
  let buffer: ChunkPoint[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: Error | undefined;
  const flush = async (): Promise<void> => {
    const points = buffer;
    buffer = [];
    if (points.length === 0) return;
    while (inFlight.size >= 2) await Promise.race(inFlight);
    if (failure) throw failure;
    const upsert = store.upsert(LEXICAL_COLLECTION, points).catch((error: Error) => void (failure ??= error));
    inFlight.add(upsert);
    void upsert.finally(() => inFlight.delete(upsert));
  };
  let lastLog = performance.now();
  let checkedShape = false;
  const target = CHUNKS - realChunks;
  while (directChunks < target) {
    const text = nextDocument();
    const filename = `synthetic-${String(directFiles).padStart(5, '0')}.txt`;
    const chunks = chunkDocument(await parseDocument(Buffer.from(text), filename), sizes, counter).slice(0, target - directChunks);
    const fileId = newId('file-', 24);
    const generation = randomUUID();
    for (const chunk of chunks) {
      const sparse = bm25.encodeDocument(chunk.text);
      const payload: ChunkPayload = {
        project_id: projectId,
        kb_id: kbId,
        file_id: fileId,
        filename,
        chunk_index: chunk.index,
        generation,
        ready: true,
        text: chunk.text,
        page_start: chunk.pageStart,
        page_end: chunk.pageEnd,
        title: chunk.title,
        char_start: chunk.charStart,
        char_end: chunk.charEnd,
        attributes: {},
      };
      if (!checkedShape) {
        // What Qdrant stores is the JSON: undefined fields are absent, as in the pipeline's points.
        const mine = Object.keys(JSON.parse(JSON.stringify(payload)) as object).sort();
        const theirs = Object.keys(realPayload).sort();
        if (mine.join() !== theirs.join()) throw new Error(`payload keys differ from the pipeline's: ${mine.join()} vs ${theirs.join()}`);
        checkedShape = true;
      }
      buffer.push({ id: store.pointId(kbId, fileId, chunk.index), sparse, payload });
      const n = chunk.text.split(/\s+/).length;
      wordCounts[directChunks] = Math.min(n, 65_535);
      words += n;
      terms += sparse.indices.length;
      textBytes += Buffer.byteLength(chunk.text);
      directChunks += 1;
    }
    directFiles += 1;
    if (buffer.length >= 1024) await flush();
    if (performance.now() - lastLog > 10_000) {
      lastLog = performance.now();
      log(`  ${fmtInt(directChunks)} / ${fmtInt(target)} chunks written`);
    }
  }
  await flush();
  await Promise.all(inFlight);
  if (failure) throw failure;
  const buildS = (performance.now() - started) / 1000;
  log(`${fmtInt(directChunks)} chunks in ${fmtInt(directFiles)} files written directly; waiting for Qdrant's optimizers`);

  // 3. Searches should hit an optimised collection, as they would in production some time after ingestion.
  const optimiseStarted = performance.now();
  let info = await client.getCollection(LEXICAL_COLLECTION);
  let nudged = false;
  while (info.status !== 'green' || info.optimizer_status !== 'ok') {
    if (performance.now() - optimiseStarted > 600_000) throw new Error(`collection still ${info.status} after 10 min`);
    if (info.status === 'grey' && !nudged) {
      // Grey: optimisations pending but not started; an empty update of the optimizer config starts them.
      await client.updateCollection(LEXICAL_COLLECTION, { optimizers_config: {} });
      nudged = true;
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    info = await client.getCollection(LEXICAL_COLLECTION);
  }
  const optimiseS = (performance.now() - optimiseStarted) / 1000;
  const pointsInQdrant = await store.count(LEXICAL_COLLECTION, { projectId, kbId });
  if (pointsInQdrant !== CHUNKS) throw new Error(`expected ${CHUNKS} points in the KB, Qdrant counts ${pointsInQdrant}`);
  const sorted = wordCounts.slice(0, directChunks).sort();
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
  return {
    kbId,
    realFiles: PLAN.realFiles,
    realChunks,
    directFiles,
    directChunks,
    totalChunks: realChunks + directChunks,
    pointsInQdrant,
    words: { p10: at(0.1), p50: at(0.5), p90: at(0.9), mean: words / directChunks, min: sorted[0] ?? Number.NaN, max: sorted.at(-1) ?? Number.NaN },
    termsPerChunk: terms / directChunks,
    textMb: textBytes / 1e6,
    buildS,
    optimiseS,
    segments: info.segments_count ?? Number.NaN,
    payloadKeys: Object.keys(realPayload).sort(),
  };
}

// ---------------------------------------------------------------- measurement

interface Sample {
  latencies: number[];
  errors: number;
  firstError?: string;
  elapsedMs: number;
  cairnCpuMs: number;
  qdrantCpuMs: number;
  /** This process's own CPU (the load generator, and the client side of the in-process targets). */
  benchCpuMs: number;
  /** Requests whose query the retriever's LRU already held (mirrored here). */
  cacheHits: number;
  emptyResults: number;
  /** qdrant-http: Qdrant's own `time` per request, ms. */
  serverMs: number[];
}
const emptySample = (): Sample => ({ latencies: [], errors: 0, elapsedMs: 0, cairnCpuMs: 0, qdrantCpuMs: 0, benchCpuMs: 0, cacheHits: 0, emptyResults: 0, serverMs: [] });
let warmupErrors = 0;

interface Target {
  name: string;
  what: string;
  /** One request; resolves with its latency in ms. `sample` is undefined during warm-ups. */
  run(sample: Sample | undefined): Promise<number>;
}

/** Runs `count` requests back to back; records them into `sample` unless it is a warm-up. */
async function sequential(target: Target, count: number, sample: Sample | undefined, pids: { cairn?: number; qdrant?: number }): Promise<void> {
  const cairnBefore = cpuMs(pids.cairn);
  const qdrantBefore = cpuMs(pids.qdrant);
  const benchBefore = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    try {
      const latency = await target.run(sample);
      sample?.latencies.push(latency);
    } catch (error) {
      if (!sample) {
        // A warm-up failure is reported, not fatal: the measured block counts its own errors.
        if (warmupErrors++ === 0) log(`  ${target.name}: warm-up request failed: ${(error as Error).message}`);
        continue;
      }
      sample.errors += 1;
      sample.firstError ??= (error as Error).message;
    }
  }
  if (sample) {
    sample.elapsedMs += performance.now() - started;
    sample.cairnCpuMs += cpuMs(pids.cairn) - cairnBefore;
    sample.qdrantCpuMs += cpuMs(pids.qdrant) - qdrantBefore;
    const bench = process.cpuUsage(benchBefore);
    sample.benchCpuMs += (bench.user + bench.system) / 1000;
  }
}

class RequestFailed extends Error {}

// ---------------------------------------------------------------- main

let exitCode = 0;
try {
  log(`retrieval benchmark${QUICK ? ' (quick run)' : ''}: ${fmtInt(CHUNKS)} chunks, ${fmtInt(QUERIES)} queries per search target, ${fmtInt(CHAT)} chat requests per variant, db ${DB}`);
  await waitForOtherBenchmark('building the knowledge base');

  log('starting Qdrant, the database, the stub and Cairn');
  const [managed, db] = await Promise.all([
    ManagedQdrant.start({
      storageDir: path.join(tempDir, 'qdrant'),
      logger: { debug() {}, info() {}, warn() {}, error: (obj: object, msg: string) => log(`qdrant: ${msg} ${JSON.stringify(obj)}`) },
    }),
    DB === 'postgres' ? createTestDatabase() : Promise.resolve(undefined),
  ]);
  qdrant = managed;
  database = db;
  const qdrantPid = managed.pid;
  const stub = await startChild('stub', root, ['--import', 'tsx', path.join(here, 'stub-server.ts')]);
  const stubPid = stub.proc.pid;
  const cairnChild: Child = await startChild('cairn', root, ['--expose-gc', '--import', 'tsx', path.join(here, 'retrieval-server.ts')], {
    BENCH_STUB_URL: stub.info.url!,
    QDRANT_URL: managed.url,
    DATABASE_URL: database?.url ?? '',
    BENCH_LOG_FILE: path.join(tempDir, 'cairn.log'),
  });
  const cairnPid = cairnChild.proc.pid;
  const projectId = cairnChild.info.projectId!;
  const cairnUrl = cairnChild.info.url!;
  const cairn: Http = {
    pool: new Pool(cairnUrl, { connections: 4, pipelining: 1, keepAliveTimeout: 60_000 }),
    headers: { 'content-type': 'application/json', authorization: `Bearer ${cairnChild.info.key}` },
  };
  const qdrantHttp: Http = { pool: new Pool(managed.url, { connections: 4, pipelining: 1, keepAliveTimeout: 60_000 }), headers: { 'content-type': 'application/json' } };
  const store = new QdrantChunkStore({ url: managed.url });
  log(`Cairn at ${cairnUrl} (${cairnChild.info.db}), Qdrant at ${managed.url}`);

  log(`building the knowledge base: ${fmtInt(CHUNKS)} chunks`);
  const kb = await buildKnowledgeBase(cairnUrl, cairn, projectId, managed.url, store);
  log(`knowledge base ready: ${fmtInt(kb.pointsInQdrant)} points, built in ${fmt(kb.buildS, 0)} s, optimised in ${fmt(kb.optimiseS, 0)} s, ${kb.segments} segments`);

  // Query vectors for the Qdrant targets, encoded as Cairn encodes them.
  const encoder = new Bm25Encoder();
  const sparseOf = new Map<string, SparseVector>([...missSet, ...hitSet].map((text) => [text, encoder.encodeQuery(text)]));
  const filter = { must: [...scopeConditions(projectId, kb.kbId), { key: 'ready', match: { value: true } }] };

  // Sanity: Cairn's search finds what Qdrant finds.
  {
    const query = missSet[0]!;
    const viaCairn = await requestJson(cairn, 'POST', `/v1/knowledge_bases/${kb.kbId}/search`, { query, max_num_results: MAX_RESULTS });
    retrieverSees(query);
    const direct = await store.search(LEXICAL_COLLECTION, { projectId, kbId: kb.kbId, sparse: sparseOf.get(query)!, limit: MAX_RESULTS });
    if (viaCairn.status !== 200 || !Array.isArray(viaCairn.json.data) || viaCairn.json.data.length === 0) {
      throw new Error(`search: HTTP ${viaCairn.status} ${JSON.stringify(viaCairn.json).slice(0, 300)}`);
    }
    if (viaCairn.json.data[0].file_id !== direct[0]?.payload.file_id) throw new Error('Cairn\'s top hit is not Qdrant\'s');
    log(`search works: ${viaCairn.json.data.length} results, top hit ${viaCairn.json.data[0].filename} as in Qdrant`);
  }

  let pg: Database | undefined;
  let kbStore: KnowledgeBaseStore | undefined;
  if (database) {
    pg = await openDatabase({ databaseUrl: database.url, dataDir: tempDir, poolSize: 1, onError: () => undefined });
    kbStore = new KnowledgeBaseStore(pg);
  }

  await waitForOtherBenchmark('measuring');

  // --- search targets
  const searchPath = `/v1/knowledge_bases/${kb.kbId}/search`;
  const nextMiss = cycle(missSet);
  const nextHit = cycle(hitSet);
  const cairnSearch = (next: () => string) => async (sample: Sample | undefined): Promise<number> => {
    const query = next();
    const hit = retrieverSees(query);
    const body = JSON.stringify({ query, max_num_results: MAX_RESULTS });
    const started = performance.now();
    const response = await cairn.pool.request({ method: 'POST', path: searchPath, headers: cairn.headers, body });
    const text = await response.body.text();
    const latency = performance.now() - started;
    if (response.statusCode !== 200) throw new RequestFailed(`HTTP ${response.statusCode}: ${text.slice(0, 300)}`);
    if (sample) {
      if (hit) sample.cacheHits += 1;
      if (text.includes('"data":[]')) sample.emptyResults += 1;
    }
    return latency;
  };
  const nextMissForClient = cycle(missSet);
  const nextMissForGzip = cycle(missSet);
  const nextMissForHttp = cycle(missSet);
  // The JS client as QdrantChunkStore builds it, minus its `accept-encoding: identity`: fetch then
  // sends `accept-encoding: gzip, deflate`, and Qdrant answers gzip'd and chunked.
  const qdrantOrigin = new URL(managed.url);
  const gzipClient = new QdrantClient({
    url: `${qdrantOrigin.protocol}//${qdrantOrigin.host}`,
    port: Number(qdrantOrigin.port),
    prefix: '',
    headers: {},
    timeout: 60_000,
    checkCompatibility: false,
  });
  const targets: Target[] = [
    { name: 'cairn-miss', what: 'Cairn search, query encoding not cached', run: cairnSearch(nextMiss) },
    { name: 'cairn-hit', what: 'Cairn search, query encoding cached', run: cairnSearch(nextHit) },
    {
      name: 'qdrant-client',
      what: 'QdrantChunkStore.search in the bench process',
      run: async (sample) => {
        const sparse = sparseOf.get(nextMissForClient())!;
        const started = performance.now();
        const hits = await store.search(LEXICAL_COLLECTION, { projectId, kbId: kb.kbId, sparse, limit: MAX_RESULTS });
        const latency = performance.now() - started;
        if (sample && hits.length === 0) sample.emptyResults += 1;
        return latency;
      },
    },
    {
      name: 'qdrant-gzip',
      what: 'the same, JS client without accept-encoding: identity',
      run: async (sample) => {
        const sparse = sparseOf.get(nextMissForGzip())!;
        const started = performance.now();
        const response = await gzipClient.query(LEXICAL_COLLECTION, { query: sparse, using: 'bm25', filter, limit: MAX_RESULTS, with_payload: true });
        const latency = performance.now() - started;
        if (sample && response.points.length === 0) sample.emptyResults += 1;
        return latency;
      },
    },
    {
      name: 'qdrant-http',
      what: 'the same query as a bare HTTP request',
      run: async (sample) => {
        const sparse = sparseOf.get(nextMissForHttp())!;
        const body = JSON.stringify({ query: sparse, using: 'bm25', filter, limit: MAX_RESULTS, with_payload: true });
        const started = performance.now();
        const response = await qdrantHttp.pool.request({ method: 'POST', path: `/collections/${LEXICAL_COLLECTION}/points/query`, headers: qdrantHttp.headers, body });
        const text = await response.body.text();
        const latency = performance.now() - started;
        if (response.statusCode !== 200) throw new RequestFailed(`HTTP ${response.statusCode}: ${text.slice(0, 300)}`);
        if (sample) {
          const parsed = JSON.parse(text) as { time?: number; result?: { points?: unknown[] } };
          if (typeof parsed.time === 'number') sample.serverMs.push(parsed.time * 1000);
          if ((parsed.result?.points?.length ?? 0) === 0) sample.emptyResults += 1;
        }
        return latency;
      },
    },
    ...(kbStore
      ? [{
          name: 'postgres-kb',
          what: 'KnowledgeBaseStore.getSearchable in the bench process',
          run: async (): Promise<number> => {
            const started = performance.now();
            const found = await kbStore.getSearchable(projectId, kb.kbId);
            const latency = performance.now() - started;
            if (!found) throw new RequestFailed('KB not found in Postgres');
            return latency;
          },
        }]
      : []),
    {
      name: 'cairn-models',
      what: 'Cairn GET /v1/models (HTTP + auth floor)',
      run: async () => {
        const started = performance.now();
        const response = await cairn.pool.request({ method: 'GET', path: '/v1/models', headers: cairn.headers });
        const text = await response.body.text();
        const latency = performance.now() - started;
        if (response.statusCode !== 200) throw new RequestFailed(`HTTP ${response.statusCode}: ${text.slice(0, 300)}`);
        return latency;
      },
    },
  ];

  const pids = { cairn: cairnPid, qdrant: qdrantPid };
  const perBlock = Math.ceil(QUERIES / PLAN.rounds);
  // Fill the retriever's cache with the hit set before anything is measured.
  for (const query of hitSet) await cairnSearch(() => query)(undefined);
  log(`search: ${PLAN.rounds} rounds × ${perBlock} requests over ${targets.map((t) => t.name).join(', ')}`);
  await command(cairnChild, 'start', 'started');
  const searchSamples = new Map(targets.map((t) => [t.name, emptySample()]));
  for (let round = 0; round < PLAN.rounds; round++) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
    for (const target of order) {
      await sequential(target, PLAN.searchWarmup, undefined, pids);
      await sequential(target, perBlock, searchSamples.get(target.name)!, pids);
      checkOverlap('search');
    }
  }
  const searchRuntime = (await command(cairnChild, 'stats', 'stats'))?.stats as Record<string, number> | undefined;
  for (const [name, sample] of searchSamples) if (sample.errors > 0) log(`  ${name}: ${sample.errors} failed, first: ${sample.firstError}`);

  // --- BM25 query encoding, in this process: a fresh encoder (cold word memo), then again (warm)
  const encodeTimes = (bm25: Bm25Encoder): number => {
    const started = performance.now();
    for (const text of missSet) bm25.encodeQuery(text);
    return ((performance.now() - started) * 1000) / missSet.length;
  };
  const fresh = new Bm25Encoder();
  const encodeColdUs = encodeTimes(fresh);
  const encodeWarmUs = encodeTimes(fresh);

  // --- mergeChunks (src/rag/merge-chunks.ts) over real result lists, mapped as the retriever maps them
  const resultLists: RetrievedChunk[][] = [];
  for (const text of missSet.slice(0, 200)) {
    const hits = await store.search(LEXICAL_COLLECTION, { projectId, kbId: kb.kbId, sparse: sparseOf.get(text)!, limit: MAX_RESULTS });
    resultLists.push(hits.map((hit) => ({
      chunkId: hit.id, knowledgeBaseId: kb.kbId, fileId: hit.payload.file_id, filename: hit.payload.filename, score: 0.5, text: hit.payload.text,
      chunkIndex: hit.payload.chunk_index, charStart: hit.payload.char_start, charEnd: hit.payload.char_end, attributes: {},
    })));
  }
  let mergeUs = Number.POSITIVE_INFINITY;
  for (let pass = 0; pass < 3; pass++) {
    const started = performance.now();
    for (const list of resultLists) mergeChunks(list);
    mergeUs = Math.min(mergeUs, ((performance.now() - started) * 1000) / resultLists.length);
  }

  // --- chat with and without retrieval
  const chatWith = emptySample();
  const chatWithout = emptySample();
  const retrievalMs: number[] = [];
  const chatOnce = async (question: string, withKb: boolean, sample: Sample | undefined): Promise<void> => {
    const hit = withKb ? retrieverSees(question) : false;
    const body = JSON.stringify({
      model: 'bench-model',
      messages: [{ role: 'user', content: question }],
      ...(withKb ? { knowledge_bases: [kb.kbId] } : {}),
    });
    const started = performance.now();
    try {
      const response = await cairn.pool.request({ method: 'POST', path: '/v1/chat/completions', headers: cairn.headers, body });
      const text = await response.body.text();
      const latency = performance.now() - started;
      if (response.statusCode !== 200 || !text.includes('stub answer')) throw new RequestFailed(`HTTP ${response.statusCode}: ${text.slice(0, 300)}`);
      if (!sample) return;
      sample.latencies.push(latency);
      if (hit) sample.cacheHits += 1;
      if (withKb) {
        const header = Number(response.headers['x-cairn-retrieval-ms']);
        if (!Number.isFinite(header)) throw new RequestFailed('no x-cairn-retrieval-ms header');
        retrievalMs.push(header);
      }
    } catch (error) {
      if (!sample) throw error;
      sample.errors += 1;
      sample.firstError ??= (error as Error).message;
    }
  };
  log(`chat: ${PLAN.chatWarmupPairs} warm-up pairs, then ${CHAT} pairs (without / with knowledge_bases, alternating order)`);
  await command(cairnChild, 'start', 'started');
  const chatStarted = performance.now();
  const chatCpu = { cairn: cpuMs(cairnPid), stub: cpuMs(stubPid), qdrant: cpuMs(qdrantPid) };
  for (let i = 0; i < PLAN.chatWarmupPairs + CHAT; i++) {
    const question = nextMiss();
    const measured = i >= PLAN.chatWarmupPairs;
    const pair: Array<[boolean, Sample]> = i % 2 === 0 ? [[false, chatWithout], [true, chatWith]] : [[true, chatWith], [false, chatWithout]];
    for (const [withKb, sample] of pair) await chatOnce(question, withKb, measured ? sample : undefined);
    if (i % 50 === 49) checkOverlap('chat');
  }
  const chatElapsedS = (performance.now() - chatStarted) / 1000;
  const chatCpuUsed = { cairn: cpuMs(cairnPid) - chatCpu.cairn, stub: cpuMs(stubPid) - chatCpu.stub, qdrant: cpuMs(qdrantPid) - chatCpu.qdrant };
  const chatRuntime = (await command(cairnChild, 'stats', 'stats'))?.stats as Record<string, number> | undefined;
  for (const [name, sample] of [['chat without', chatWithout], ['chat with', chatWith]] as const) {
    if (sample.errors > 0) log(`  ${name}: ${sample.errors} failed, first: ${sample.firstError}`);
  }

  // --- results
  const stats = new Map([...searchSamples].map(([name, sample]) => [name, summarise(sample.latencies)]));
  const miss = stats.get('cairn-miss')!;
  const hit = stats.get('cairn-hit')!;
  const viaClient = stats.get('qdrant-client')!;
  const viaGzip = stats.get('qdrant-gzip')!;
  const viaHttp = stats.get('qdrant-http')!;
  const pgLookup = stats.get('postgres-kb');
  const floor = stats.get('cairn-models')!;
  const qdrantTime = summarise(searchSamples.get('qdrant-http')!.serverMs);
  const pass = miss.p95 <= GOAL_P95_MS;

  let profileText = '';
  let profileFile: string | undefined;
  if (PROFILE === 'on' || (PROFILE === 'auto' && !pass)) {
    const profileDir = path.join(os.tmpdir(), 'cairn-bench-profiles');
    mkdirSync(profileDir, { recursive: true });
    profileFile = path.join(profileDir, `retrieval-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
    log(`profiling the Cairn child over ${PLAN.profileQueries} cache-miss searches`);
    const profiled = emptySample();
    await command(cairnChild, 'profile-start', 'profiling');
    await sequential(targets[0]!, PLAN.profileQueries, profiled, pids);
    checkOverlap('profile');
    const answer = await command(cairnChild, `profile-stop ${profileFile}`, 'profiled', 30_000);
    if (!answer || 'error' in answer) throw new Error(`profile-stop failed: ${JSON.stringify(answer)}`);
    const profiledStats = summarise(profiled.latencies);
    const summary = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'profile-top.ts'), profileFile, '--top=25'], { cwd: root, encoding: 'utf8' });
    const cairnOnly = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'profile-top.ts'), profileFile, '--top=30', '--match=\\[cairn'], {
      cwd: root,
      encoding: 'utf8',
    });
    const inclusive = cairnOnly.stdout.slice(cairnOnly.stdout.indexOf('\ntop 30 functions by total'));
    profileText = [
      `Profile of the Cairn child: ${profiled.latencies.length} cache-miss searches with the profiler on (p50 ${fmt(profiledStats.p50)} ms, ` +
        `p95 ${fmt(profiledStats.p95)} ms, Cairn CPU ${fmtInt((profiled.cairnCpuMs / profiled.latencies.length) * 1000)} µs/req); ${profileFile}`,
      '',
      '```',
      summary.stdout.trim(),
      inclusive.trim(),
      '```',
    ].join('\n');
  }

  const elapsed = (performance.now() - runStarted) / 1000;
  const cpu = os.cpus();
  const lines: string[] = [];
  lines.push(
    `Retrieval — ${new Date().toISOString()} — ${cpu.length} × ${cpu[0]?.model.trim() ?? '?'}, node ${process.version}, ` +
      `${QUICK ? 'quick run' : 'full run'}, ${elapsed.toFixed(0)} s`,
  );
  lines.push(
    `Cairn in server mode: ${DB === 'postgres' ? 'PostgreSQL (fresh database on 127.0.0.1:5432)' : 'PGlite (embedded)'}, Qdrant ${managed.url} ` +
      '(ManagedQdrant from node_modules), log level info to a file, no reranker.',
  );

  if (waits.length > 0) {
    lines.push(`Waited for \`${WAIT_FOR}\`: ${waits.map((w) => `${w.waitedS} s before ${w.before}${w.stillRunning ? ' (STILL RUNNING: results distorted)' : ''}`).join('; ')}.`);
  }
  if (overlaps.size > 0) lines.push(`WARNING: \`${WAIT_FOR}\` ran during ${[...overlaps].join(' and ')}: those numbers are distorted.`);
  lines.push('');
  lines.push(
    `Knowledge base ${kb.kbId}: lexical-only (\`embedding_model: "none"\`, created with POST /v1/knowledge_bases), ` +
      `${fmtInt(kb.pointsInQdrant)} chunks in \`${LEXICAL_COLLECTION}\` (${kb.segments} segments). ` +
      `${kb.realFiles} synthetic files (${kb.realChunks} chunks) were uploaded and ingested through the API; ` +
      `${fmtInt(kb.directChunks)} chunks of ${fmtInt(kb.directFiles)} more synthetic files were written by this process with the real ` +
      'parseDocument → chunkDocument (auto: 400 tokens, 80 overlap) → Bm25Encoder → QdrantChunkStore.upsert, payload as the pipeline\'s ' +
      `(keys checked against an ingested point: ${kb.payloadKeys.join(', ')}; ready: true), without file rows in Postgres. ` +
      `Synthetic documents: paragraphs of 3–8 consecutive sentences of random SciFact abstracts, 300–12,000 words each (seed ${SEED}). ` +
      `Chunk words p10/p50/p90 ${kb.words.p10}/${kb.words.p50}/${kb.words.p90} (min ${kb.words.min}, max ${kb.words.max}), ` +
      `${fmt(kb.termsPerChunk, 0)} distinct BM25 terms per chunk, ${fmt(kb.textMb, 0)} MB of text. ` +
      `Built in ${fmt(kb.buildS, 0)} s, then ${fmt(kb.optimiseS, 0)} s until Qdrant's optimizers were idle.`,
  );
  lines.push('');
  lines.push(
    `Search, concurrency 1, max_num_results ${MAX_RESULTS}, ${PLAN.rounds} rounds, targets rotating; queries: cache-miss set = ${missSet.length} SciFact ` +
      `queries cycled (more than the retriever's ${RETRIEVER_CACHE}-entry LRU), cache-hit set = ${hitSet.length} SciFact test queries.`,
  );
  lines.push('');
  const rows = targets.map((target) => {
    const s = stats.get(target.name)!;
    const sample = searchSamples.get(target.name)!;
    const isCairnSearch = target.name.startsWith('cairn-') && target.name !== 'cairn-models';
    return [
      target.name, target.what, fmtInt(s.n), fmt(s.p50), fmt(s.p95), fmt(s.p99), fmt(s.mean), fmtInt((s.n / sample.elapsedMs) * 1000),
      fmtInt((sample.cairnCpuMs / Math.max(1, s.n)) * 1000), fmtInt((sample.qdrantCpuMs / Math.max(1, s.n)) * 1000),
      fmtInt((sample.benchCpuMs / Math.max(1, s.n)) * 1000),
      isCairnSearch ? `${fmt((sample.cacheHits / Math.max(1, s.n)) * 100, 0)}%` : '–', String(sample.errors),
    ];
  });
  lines.push(
    table(
      ['target', 'what', 'n', 'p50 ms', 'p95 ms', 'p99 ms', 'mean ms', 'req/s', 'Cairn CPU µs/req', 'Qdrant CPU µs/req', 'bench CPU µs/req', 'LRU hits', 'errors'],
      rows,
      [false, false, true, true, true, true, true, true, true, true, true, true, true],
    ),
  );
  const empty = [...searchSamples].filter(([, sample]) => sample.emptyResults > 0).map(([name, sample]) => `${name} ${sample.emptyResults}`);
  if (empty.length > 0) lines.push('', `Requests with no results: ${empty.join(', ')}.`);
  if (warmupErrors > 0) lines.push('', `WARNING: ${warmupErrors} warm-up requests failed (not counted above).`);
  lines.push('');
  lines.push(
    `Qdrant's own \`time\` for the query (qdrant-http): p50 ${fmt(qdrantTime.p50)} ms, p95 ${fmt(qdrantTime.p95)} ms. ` +
      `Cairn over Qdrant as Cairn calls it (cairn-miss − qdrant-client): p50 +${fmt(miss.p50 - viaClient.p50)} ms, p95 +${fmt(miss.p95 - viaClient.p95)} ms; ` +
      `over the bare HTTP query (cairn-miss − qdrant-http): p50 +${fmt(miss.p50 - viaHttp.p50)} ms, p95 +${fmt(miss.p95 - viaHttp.p95)} ms. ` +
      `Gzip'd answers, as before 373006e (qdrant-gzip − qdrant-client): p50 +${fmt(viaGzip.p50 - viaClient.p50)} ms, ` +
      `p95 +${fmt(viaGzip.p95 - viaClient.p95)} ms. Cache hit vs miss p50: ${fmt(hit.p50 - miss.p50)} ms.`,
  );
  lines.push(
    `Parts, measured from the bench process: BM25 query encoding ${fmt(encodeColdUs, 0)} µs/query with a cold word memo, ${fmt(encodeWarmUs, 1)} µs warm; ` +
      `${pgLookup ? `the KB lookup in Postgres p50 ${fmt(pgLookup.p50)} ms (p95 ${fmt(pgLookup.p95)}); ` : ''}` +
      `mergeChunks over a result list of ${MAX_RESULTS} ${fmt(mergeUs, 0)} µs; Cairn's floor (GET /v1/models) p50 ${fmt(floor.p50)} ms.`,
  );

  const chatStatsWithout = summarise(chatWithout.latencies);
  const chatStatsWith = summarise(chatWith.latencies);
  const retrieval = summarise(retrievalMs);
  lines.push('');
  lines.push(
    `Chat completions, non-streaming, stub upstream, concurrency 1: ${CHAT} pairs after ${PLAN.chatWarmupPairs} warm-up pairs; ` +
      'each pair asks one cache-miss question without and with `knowledge_bases: [kbId]` (default 8 results packed into the prompt).',
  );
  lines.push('');
  lines.push(
    table(
      ['variant', 'n', 'p50 ms', 'p95 ms', 'p99 ms', 'mean ms', 'LRU hits', 'errors'],
      [
        ['without knowledge_bases', fmtInt(chatStatsWithout.n), fmt(chatStatsWithout.p50), fmt(chatStatsWithout.p95), fmt(chatStatsWithout.p99), fmt(chatStatsWithout.mean), '–', String(chatWithout.errors)],
        ['with knowledge_bases', fmtInt(chatStatsWith.n), fmt(chatStatsWith.p50), fmt(chatStatsWith.p95), fmt(chatStatsWith.p99), fmt(chatStatsWith.mean),
          `${fmt((chatWith.cacheHits / Math.max(1, chatStatsWith.n)) * 100, 0)}%`, String(chatWith.errors)],
        ['x-cairn-retrieval-ms (header)', fmtInt(retrieval.n), fmt(retrieval.p50, 0), fmt(retrieval.p95, 0), fmt(retrieval.p99, 0), fmt(retrieval.mean), '–', '–'],
      ],
      [false, true, true, true, true, true, true, true],
    ),
  );
  lines.push('');
  lines.push(
    `Retrieval adds p50 +${fmt(chatStatsWith.p50 - chatStatsWithout.p50)} ms, p95 +${fmt(chatStatsWith.p95 - chatStatsWithout.p95)} ms to a chat completion ` +
      `(the header's p50: ${fmt(retrieval.p50, 0)} ms). CPU over the chat phase, per request of either variant: Cairn ` +
      `${fmtInt((chatCpuUsed.cairn / (chatWith.latencies.length + chatWithout.latencies.length)) * 1000)} µs, stub ` +
      `${fmtInt((chatCpuUsed.stub / (chatWith.latencies.length + chatWithout.latencies.length)) * 1000)} µs, Qdrant ` +
      `${fmtInt((chatCpuUsed.qdrant / Math.max(1, chatWith.latencies.length)) * 1000)} µs per request with knowledge_bases (${fmt(chatElapsedS, 0)} s).`,
  );
  lines.push('');
  lines.push(
    table(
      ['goal', 'measured', 'result'],
      [
        [`search p95 ≤ ${GOAL_P95_MS} ms (cache miss)`, `${fmt(miss.p95)} ms`, pass ? 'PASS' : 'MISS'],
        [`search p95 ≤ ${GOAL_P95_MS} ms (cache hit, for reference)`, `${fmt(hit.p95)} ms`, hit.p95 <= GOAL_P95_MS ? 'PASS' : 'MISS'],
      ],
      [false, true, false],
    ),
  );
  const runtimeRows = [['search', searchRuntime], ['chat', chatRuntime]] as const;
  if (runtimeRows.some(([, r]) => r)) {
    lines.push('', 'Inside the Cairn process, per phase (warm-ups included):', '');
    lines.push(
      table(
        ['phase', 'GC pauses', 'major GCs', 'GC median ms', 'GC max ms', 'GC total ms', 'loop delay p99 ms', 'loop delay max ms', 'heap used MB'],
        runtimeRows.filter(([, r]) => r).map(([phase, r]) => [
          phase, fmtInt(r!.gcPauses!), fmtInt(r!.majorGcs!), fmt(r!.gcMedianMs!), fmt(r!.gcMaxMs!), fmtInt(r!.gcTotalMs!), fmt(r!.loopDelayP99Ms!),
          fmt(r!.loopDelayMaxMs!), fmtInt(r!.heapUsedMb!),
        ]),
        [false, true, true, true, true, true, true, true, true],
      ),
    );
  }
  const errors = [...searchSamples.values(), chatWith, chatWithout].reduce((n, s) => n + s.errors, 0);
  if (errors > 0) lines.push('', `WARNING: ${errors} requests failed; see the log above.`);
  if (profileText) lines.push('', profileText);
  process.stdout.write(`\n${lines.join('\n')}\n`);

  if (JSON_FILE) {
    const json = {
      date: new Date().toISOString(),
      quick: QUICK,
      machine: { cpus: cpu.length, model: cpu[0]?.model.trim(), node: process.version },
      db: DB,
      waits,
      overlaps: [...overlaps],
      kb,
      search: Object.fromEntries([...stats].map(([name, s]) => {
        const sample = searchSamples.get(name)!;
        return [name, { ...s, rps: (s.n / sample.elapsedMs) * 1000, cairnCpuUs: (sample.cairnCpuMs / s.n) * 1000, qdrantCpuUs: (sample.qdrantCpuMs / s.n) * 1000, cacheHits: sample.cacheHits, errors: sample.errors }];
      })),
      qdrantServerTime: qdrantTime,
      encodeUs: { cold: encodeColdUs, warm: encodeWarmUs },
      mergeChunksUs: mergeUs,
      chat: { without: chatStatsWithout, with: chatStatsWith, retrievalHeaderMs: retrieval, addedP50: chatStatsWith.p50 - chatStatsWithout.p50 },
      goal: { p95Ms: GOAL_P95_MS, measured: miss.p95, pass },
      runtime: { search: searchRuntime, chat: chatRuntime },
      profileFile,
    };
    writeFileSync(JSON_FILE, `${JSON.stringify(json, null, 2)}\n`);
  }
  if (errors > 0 || (STRICT && !pass)) exitCode = 1;
  await Promise.all([cairn.pool.close(), qdrantHttp.pool.close(), pg?.close()]);
} catch (error) {
  if (!aborting) process.stderr.write(`\nbenchmark failed: ${(error as Error).stack ?? String(error)}\n`);
  exitCode = 1;
} finally {
  if (!aborting) {
    log('stopping Cairn, the stub, Qdrant and the database');
    await cleanup();
  }
}
process.exit(exitCode);
