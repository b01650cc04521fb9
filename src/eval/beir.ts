/**
 * Retrieval quality on a BEIR dataset, measured through a running Cairn's public HTTP API: the
 * corpus is uploaded as one file per document into a fresh knowledge base per mode (lexical BM25,
 * hybrid dense + BM25), every test query goes through the search endpoint, and the ranked documents
 * are scored against the qrels as BEIR scores them (see ir-metrics.ts).
 *
 * Dataset layout (BEIR's): corpus.jsonl (`{"_id","title","text"}` per line), queries.jsonl
 * (`{"_id","text"}`), qrels/test.tsv (`query-id  corpus-id  score`, a header line, LF or CRLF).
 */
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { SingleBar } from 'cli-progress';
import pLimit from 'p-limit';
import { mean, mrrAtK, ndcgAtK, percentile, recallAtK } from './ir-metrics.ts';

export type BeirMode = 'lexical' | 'hybrid';
export const BEIR_MODES: readonly BeirMode[] = ['lexical', 'hybrid'];

export interface BeirDocument {
  id: string;
  title: string;
  text: string;
}

/** Query id → (document id → relevance grade). */
export type Qrels = Map<string, Map<string, number>>;

export interface BeirEvalOptions {
  /** The API root, with the version: `http://127.0.0.1:8080/v1`. */
  baseUrl: string;
  apiKey: string;
  modes: BeirMode[];
  /** Hybrid mode's embedding model; default: the server's default embedding model. */
  embeddingModel?: string;
  /** Evaluate only the first n test queries (in qrels order); the whole corpus is still indexed. */
  limitQueries?: number;
  /** Uploads (and file deletions) at once. */
  concurrency: number;
  /** Searches at once. Default 1, so the latencies are those of one request on an idle server. */
  searchConcurrency?: number;
  /** Keep the knowledge bases and uploaded files instead of deleting them at the end. */
  keep?: boolean;
  /** Progress bars (shown on a TTY only), notes and the result tables. */
  out: NodeJS.WritableStream;
  /** Give up when no file finishes ingesting for this long. Default 10 minutes. */
  stallTimeoutMs?: number;
}

export interface QueryResult {
  queryId: string;
  /** Document ids, best first (chunks of one document collapsed to its best rank). */
  ranked: string[];
  ndcgAt10: number;
  recallAt10: number;
  recallAt100: number;
  mrrAt10: number;
  latencyMs: number;
}

export interface ModeScores {
  mode: BeirMode;
  skipped: false;
  knowledgeBaseId: string;
  embeddingModel: string;
  /** The knowledge base and files were kept (--keep). */
  kept: boolean;
  documents: number;
  failedFiles: number;
  chunks: number;
  /** From the first upload until no file of this knowledge base was in progress. */
  indexSeconds: number;
  queries: number;
  ndcgAt10: number;
  recallAt10: number;
  recallAt100: number;
  mrrAt10: number;
  latencyMs: { p50: number; p95: number };
  perQuery: QueryResult[];
  notes: string[];
}

export interface ModeSkipped {
  mode: BeirMode;
  skipped: true;
  note: string;
}

export type ModeResult = ModeScores | ModeSkipped;

export interface BeirEvalResult {
  dataset: string;
  documents: number;
  queries: number;
  modes: ModeResult[];
}

/** Search depth: Recall@100 needs 100 results (Cairn's /v1/knowledge_bases mount allows 100). */
export const SEARCH_DEPTH = 100;
const BATCH_SIZE = 500;
const LEXICAL_ONLY = 'none';

// ---------------------------------------------------------------------------------------------
// Loaders

/** A file's lines, streamed (CRLF or LF endings, a UTF-8 BOM dropped), with 1-based line numbers. */
async function* readLines(file: string): AsyncGenerator<{ line: string; number: number }> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let number = 0;
  for await (const raw of lines) {
    number += 1;
    yield { line: number === 1 ? raw.replace(/^\uFEFF/, '') : raw, number };
  }
}

async function* readJsonLines(file: string): AsyncGenerator<Record<string, unknown>> {
  for await (const { line, number } of readLines(file)) {
    if (line.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (error) {
      throw new Error(`${file}:${number}: not a JSON line (${(error as Error).message})`);
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new Error(`${file}:${number}: not a JSON object`);
    const id = (record as Record<string, unknown>)._id;
    if (typeof id !== 'string' && typeof id !== 'number') throw new Error(`${file}:${number}: no "_id"`);
    yield record as Record<string, unknown>;
  }
}

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

/** corpus.jsonl, one document at a time (BEIR corpora run to millions of lines). */
export async function* readCorpus(dir: string): AsyncGenerator<BeirDocument> {
  for await (const record of readJsonLines(path.join(dir, 'corpus.jsonl'))) {
    yield { id: String(record._id), title: text(record.title), text: text(record.text) };
  }
}

export async function readQueries(dir: string): Promise<Map<string, string>> {
  const queries = new Map<string, string>();
  for await (const record of readJsonLines(path.join(dir, 'queries.jsonl'))) queries.set(String(record._id), text(record.text));
  return queries;
}

/** A qrels TSV: `query-id  corpus-id  score`, an optional header line, CRLF or LF. Later lines win for a repeated pair. */
export async function readQrels(file: string): Promise<Qrels> {
  const qrels: Qrels = new Map();
  let first = true;
  for await (const { line, number } of readLines(file)) {
    if (line.trim() === '') continue;
    const fields = line.split('\t');
    const isFirst = first;
    first = false;
    if (fields.length < 3) throw new Error(`${file}:${number}: expected query-id, corpus-id and score separated by tabs`);
    const [queryId, docId, score] = fields.map((field) => field.trim()) as [string, string, string];
    if (!/^[+-]?\d+$/.test(score)) {
      if (isFirst) continue; // the header, `query-id  corpus-id  score`
      throw new Error(`${file}:${number}: score '${score}' is not an integer`);
    }
    let judged = qrels.get(queryId);
    if (!judged) qrels.set(queryId, (judged = new Map()));
    judged.set(docId, Number.parseInt(score, 10));
  }
  return qrels;
}

/** What is uploaded for a document: its title, a blank line, its text (BEIR's own title + text join, with a paragraph break). */
export function documentText(doc: BeirDocument): string {
  return doc.title.trim() ? `${doc.title}\n\n${doc.text}` : doc.text;
}

/**
 * Search hits (chunks) → document ids, best first. A document with several chunks keeps the rank
 * of its best one. Like BEIR (`ignore_identical_ids`), a document whose id is the query's id is dropped.
 */
export function rankDocuments(hits: ReadonlyArray<{ file_id: string }>, docIdOfFile: ReadonlyMap<string, string>, queryId?: string): string[] {
  const ranked: string[] = [];
  const seen = new Set<string>();
  for (const hit of hits) {
    const docId = docIdOfFile.get(hit.file_id);
    if (docId === undefined) throw new Error(`search returned file ${hit.file_id}, which this evaluation did not upload`);
    if (docId === queryId || seen.has(docId)) continue;
    seen.add(docId);
    ranked.push(docId);
  }
  return ranked;
}

// ---------------------------------------------------------------------------------------------
// HTTP

export class CairnApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null,
    readonly code: string | null,
  ) {
    super(message);
    this.name = 'CairnApiError';
  }
}

interface KbObject {
  id: string;
  embedding_model: string;
  file_counts: { in_progress: number; completed: number; failed: number; cancelled: number; total: number };
  chunk_count: number;
}

interface SearchPage {
  data: Array<{ file_id: string; filename: string; score: number }>;
}

class Client {
  constructor(private readonly baseUrl: string, private readonly apiKey: string) {}

  async request<T>(method: string, route: string, body?: unknown): Promise<{ payload: T; pollAfterMs?: number }> {
    const response = await fetch(`${this.baseUrl}${route}`, {
      method,
      headers: { authorization: `Bearer ${this.apiKey}`, ...(body instanceof FormData || body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body instanceof FormData ? body : body === undefined ? undefined : JSON.stringify(body),
    });
    const raw = await response.text();
    let payload: unknown;
    try {
      payload = JSON.parse(raw);
    } catch {
      payload = undefined;
    }
    if (!response.ok) {
      const error = (payload as { error?: { message?: string; param?: string | null; code?: string | null } } | undefined)?.error;
      throw new CairnApiError(
        response.status,
        `${method} ${route} → ${response.status}: ${error?.message ?? (raw.slice(0, 200) || response.statusText)}`,
        error?.param ?? null,
        error?.code ?? null,
      );
    }
    if (payload === undefined) throw new Error(`${method} ${route} → ${response.status}: the response is not JSON`);
    const pollAfter = Number(response.headers.get('openai-poll-after-ms'));
    return { payload: payload as T, pollAfterMs: Number.isFinite(pollAfter) && pollAfter > 0 ? pollAfter : undefined };
  }

  async call<T>(method: string, route: string, body?: unknown): Promise<T> {
    return (await this.request<T>(method, route, body)).payload;
  }

  async upload(filename: string, content: string): Promise<string> {
    const form = new FormData();
    form.set('purpose', 'knowledge_base');
    form.set('file', new Blob([content], { type: 'text/plain' }), filename);
    return (await this.call<{ id: string }>('POST', '/files', form)).id;
  }
}

// ---------------------------------------------------------------------------------------------
// The evaluation

interface ActiveMode {
  mode: BeirMode;
  kb: KbObject;
  indexSeconds: number;
  failedFiles: number;
  chunks: number;
}

function requirePositiveInteger(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) throw new RangeError(`${name} must be a positive integer, got ${value}`);
}

export async function runBeirEval(dir: string, options: BeirEvalOptions): Promise<BeirEvalResult> {
  if (options.modes.length === 0) throw new RangeError('modes is empty: pass lexical, hybrid or both');
  for (const mode of options.modes) if (!BEIR_MODES.includes(mode)) throw new RangeError(`unknown mode '${String(mode)}' (lexical or hybrid)`);
  if (new Set(options.modes).size !== options.modes.length) throw new RangeError('modes lists a mode twice');
  requirePositiveInteger('concurrency', options.concurrency);
  requirePositiveInteger('searchConcurrency', options.searchConcurrency);
  requirePositiveInteger('limitQueries', options.limitQueries);

  const out = options.out;
  const dataset = path.basename(path.resolve(dir));
  const qrels = await readQrels(path.join(dir, 'qrels', 'test.tsv'));
  const queryTexts = await readQueries(dir);
  // BEIR evaluates the queries that have test qrels, and only those.
  const missing = [...qrels.keys()].filter((id) => !queryTexts.has(id));
  if (missing.length > 0) throw new Error(`qrels/test.tsv names ${missing.length} quer${missing.length === 1 ? 'y' : 'ies'} missing from queries.jsonl: ${missing.slice(0, 5).join(', ')}`);
  const queryIds = [...qrels.keys()].slice(0, options.limitQueries ?? qrels.size);
  if (queryIds.length === 0) throw new Error(`${path.join(dir, 'qrels', 'test.tsv')} has no judgements`);

  const client = new Client(options.baseUrl.replace(/\/+$/, ''), options.apiKey);
  const results = new Map<BeirMode, ModeResult>();
  const active: ActiveMode[] = [];
  const fileIds: string[] = [];
  const docIdOfFile = new Map<string, string>();
  let documents = 0;
  const notes: string[] = [];

  try {
    for (const mode of options.modes) {
      const created = await createKnowledgeBase(client, dataset, mode, options.embeddingModel);
      if ('skipped' in created) {
        results.set(mode, { mode, skipped: true, note: created.skipped });
        out.write(`${mode}: skipped: ${created.skipped}\n`);
      } else {
        active.push({ mode, kb: created.kb, indexSeconds: 0, failedFiles: 0, chunks: 0 });
      }
    }

    if (active.length > 0) {
      const started = performance.now();
      const uploaded = await uploadCorpus(client, dir, active, options, fileIds, docIdOfFile);
      documents = uploaded.documents;
      if (uploaded.empty > 0) notes.push(`${uploaded.empty} document(s) with neither title nor text were not uploaded`);
      await waitForIngestion(client, active, fileIds.length, started, options);

      for (const entry of active) {
        const scores = await searchAll(client, entry, queryIds, queryTexts, qrels, docIdOfFile, options);
        const modeNotes = [...notes];
        if (entry.failedFiles > 0) modeNotes.push(`${entry.failedFiles} file(s) failed to ingest; their documents can never be retrieved`);
        const result: ModeScores = {
          mode: entry.mode,
          skipped: false,
          knowledgeBaseId: entry.kb.id,
          embeddingModel: entry.kb.embedding_model,
          kept: options.keep === true,
          documents,
          failedFiles: entry.failedFiles,
          chunks: entry.chunks,
          indexSeconds: entry.indexSeconds,
          queries: queryIds.length,
          ...scores,
          notes: modeNotes,
        };
        results.set(entry.mode, result);
        out.write(formatTable(dataset, result));
      }
    }
  } finally {
    if (options.keep) {
      for (const entry of active) out.write(`kept knowledge base ${entry.kb.id} (${entry.mode}) and its ${fileIds.length} files\n`);
    } else {
      await cleanUp(client, active, fileIds, options);
    }
  }

  return { dataset, documents, queries: queryIds.length, modes: options.modes.map((mode) => results.get(mode)!) };
}

async function createKnowledgeBase(
  client: Client,
  dataset: string,
  mode: BeirMode,
  embeddingModel: string | undefined,
): Promise<{ kb: KbObject } | { skipped: string }> {
  const name = `beir-${dataset}-${mode}`.slice(0, 256);
  if (mode === 'lexical') return { kb: await client.call<KbObject>('POST', '/knowledge_bases', { name, embedding_model: LEXICAL_ONLY }) };
  let kb: KbObject;
  try {
    kb = await client.call<KbObject>('POST', '/knowledge_bases', { name, ...(embeddingModel ? { embedding_model: embeddingModel } : {}) });
  } catch (error) {
    // An unknown model, or one whose weights cannot be loaded: 400, param embedding_model.
    if (error instanceof CairnApiError && error.status === 400) {
      return { skipped: `the server cannot use embedding model ${embeddingModel ? `'${embeddingModel}'` : '(server default)'}: ${error.message}` };
    }
    throw error;
  }
  if (kb.embedding_model === LEXICAL_ONLY) {
    // The server falls back to lexical-only when its default model cannot load: that is not hybrid.
    await client.call('DELETE', `/knowledge_bases/${kb.id}`);
    return {
      skipped: embeddingModel
        ? `embedding model '${embeddingModel}' makes a lexical-only knowledge base`
        : 'the server\'s default embedding model is unavailable (new knowledge bases are lexical-only); pass --embedding-model with a model the server can load',
    };
  }
  return { kb };
}

/**
 * Streams the corpus into uploads, at most `concurrency` at once, and attaches the uploaded files
 * to every knowledge base in batches of 500 as they accumulate, so ingestion overlaps the uploads.
 */
async function uploadCorpus(
  client: Client,
  dir: string,
  active: ActiveMode[],
  options: BeirEvalOptions,
  fileIds: string[],
  docIdOfFile: Map<string, string>,
): Promise<{ documents: number; empty: number }> {
  const bar = new SingleBar({ format: 'upload {value} documents | attached {attached} | {duration}s', stream: options.out, hideCursor: true });
  bar.start(0, 0, { attached: 0 });
  const seenIds = new Set<string>();
  const pending: string[] = [];
  let attached = 0;
  let documents = 0;
  let empty = 0;
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  const attach = async (ids: string[]): Promise<void> => {
    for (const entry of active) await client.call('POST', `/knowledge_bases/${entry.kb.id}/file_batches`, { file_ids: ids });
    attached += ids.length;
    bar.update({ attached });
  };
  try {
    for await (const doc of readCorpus(dir)) {
      if (seenIds.has(doc.id)) throw new Error(`corpus.jsonl has document id '${doc.id}' twice`);
      seenIds.add(doc.id);
      documents += 1;
      const content = documentText(doc);
      if (content.trim() === '') {
        empty += 1;
        continue;
      }
      const task: Promise<void> = client.upload(`${doc.id}.txt`, content).then(
        (fileId) => {
          docIdOfFile.set(fileId, doc.id);
          fileIds.push(fileId);
          pending.push(fileId);
          bar.increment();
        },
        (error: unknown) => {
          failure ??= { error };
        },
      ).finally(() => inFlight.delete(task));
      inFlight.add(task);
      if (inFlight.size >= options.concurrency) await Promise.race(inFlight);
      if (failure) break;
      if (pending.length >= BATCH_SIZE) await attach(pending.splice(0, BATCH_SIZE));
    }
    await Promise.all(inFlight);
    if (failure) throw failure.error;
    while (pending.length > 0) await attach(pending.splice(0, BATCH_SIZE));
  } finally {
    await Promise.all(inFlight);
    bar.stop();
  }
  return { documents, empty };
}

async function waitForIngestion(client: Client, active: ActiveMode[], expected: number, started: number, options: BeirEvalOptions): Promise<void> {
  const stallTimeoutMs = options.stallTimeoutMs ?? 600_000;
  const bar = new SingleBar({ format: 'index  [{bar}] {value}/{total} files | {chunks} chunks | failed {failed}', stream: options.out, hideCursor: true });
  bar.start(expected * active.length, 0, { chunks: 0, failed: 0 });
  const progress = new Map<string, { done: number; chunks: number; failed: number }>();
  const report = (): void => {
    const all = [...progress.values()];
    bar.update(all.reduce((sum, p) => sum + p.done, 0), {
      chunks: all.reduce((sum, p) => sum + p.chunks, 0),
      failed: all.reduce((sum, p) => sum + p.failed, 0),
    });
  };
  try {
    await Promise.all(
      active.map(async (entry) => {
        let lastDone = -1;
        let lastChange = performance.now();
        for (;;) {
          const { payload: kb, pollAfterMs } = await client.request<KbObject>('GET', `/knowledge_bases/${entry.kb.id}`);
          const counts = kb.file_counts;
          const done = counts.completed + counts.failed + counts.cancelled;
          progress.set(entry.kb.id, { done, chunks: kb.chunk_count, failed: counts.failed });
          report();
          if (counts.in_progress === 0 && counts.total >= expected) {
            entry.indexSeconds = (performance.now() - started) / 1000;
            entry.failedFiles = counts.failed + counts.cancelled;
            entry.chunks = kb.chunk_count;
            return;
          }
          if (done !== lastDone) {
            lastDone = done;
            lastChange = performance.now();
          } else if (performance.now() - lastChange > stallTimeoutMs) {
            throw new Error(`knowledge base ${entry.kb.id} (${entry.mode}): no file finished ingesting in ${Math.round(stallTimeoutMs / 1000)} s (${done}/${expected} done)`);
          }
          await sleep(pollAfterMs ?? 250);
        }
      }),
    );
  } finally {
    bar.stop();
  }
}

async function searchAll(
  client: Client,
  entry: ActiveMode,
  queryIds: string[],
  queryTexts: ReadonlyMap<string, string>,
  qrels: Qrels,
  docIdOfFile: ReadonlyMap<string, string>,
  options: BeirEvalOptions,
): Promise<Pick<ModeScores, 'ndcgAt10' | 'recallAt10' | 'recallAt100' | 'mrrAt10' | 'latencyMs' | 'perQuery'>> {
  const bar = new SingleBar({ format: `search [{bar}] {value}/{total} queries (${entry.mode})`, stream: options.out, hideCursor: true });
  bar.start(queryIds.length, 0);
  const limit = pLimit(options.searchConcurrency ?? 1);
  let perQuery: QueryResult[];
  try {
    perQuery = await Promise.all(
      queryIds.map((queryId) =>
        limit(async (): Promise<QueryResult> => {
          const started = performance.now();
          let page: SearchPage;
          try {
            page = await client.call<SearchPage>('POST', `/knowledge_bases/${entry.kb.id}/search`, { query: queryTexts.get(queryId)!, max_num_results: SEARCH_DEPTH });
          } catch (error) {
            if (error instanceof CairnApiError && error.param === 'max_num_results') {
              throw new Error(`this server does not accept max_num_results ${SEARCH_DEPTH} on /v1/knowledge_bases/{id}/search, which Recall@100 needs (${error.message})`);
            }
            throw error;
          }
          const latencyMs = performance.now() - started;
          bar.increment();
          const ranked = rankDocuments(page.data, docIdOfFile, queryId);
          const relevance = qrels.get(queryId)!;
          return {
            queryId,
            ranked,
            ndcgAt10: ndcgAtK(ranked, relevance, 10),
            recallAt10: recallAtK(ranked, relevance, 10),
            recallAt100: recallAtK(ranked, relevance, 100),
            mrrAt10: mrrAtK(ranked, relevance, 10),
            latencyMs,
          };
        }),
      ),
    );
  } finally {
    limit.clearQueue();
    bar.stop();
  }
  const latencies = perQuery.map((query) => query.latencyMs);
  return {
    ndcgAt10: mean(perQuery.map((query) => query.ndcgAt10)),
    recallAt10: mean(perQuery.map((query) => query.recallAt10)),
    recallAt100: mean(perQuery.map((query) => query.recallAt100)),
    mrrAt10: mean(perQuery.map((query) => query.mrrAt10)),
    latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95) },
    perQuery,
  };
}

/** Deletes the knowledge bases, then the uploaded files; a failure here is reported, not thrown over the run's own outcome. */
async function cleanUp(client: Client, active: ActiveMode[], fileIds: string[], options: BeirEvalOptions): Promise<void> {
  for (const entry of active) {
    try {
      await client.call('DELETE', `/knowledge_bases/${entry.kb.id}`);
    } catch (error) {
      options.out.write(`could not delete knowledge base ${entry.kb.id}: ${(error as Error).message}\n`);
    }
  }
  const limit = pLimit(options.concurrency);
  const failed = (
    await Promise.all(fileIds.map((id) => limit(() => client.call('DELETE', `/files/${id}`).then(() => false, () => true))))
  ).filter(Boolean).length;
  if (failed > 0) options.out.write(`could not delete ${failed} of ${fileIds.length} uploaded files\n`);
}

const fixed = (value: number): string => value.toFixed(4);

export function formatTable(dataset: string, result: ModeScores): string {
  const rows: Array<[string, string]> = [
    ['nDCG@10', fixed(result.ndcgAt10)],
    ['Recall@10', fixed(result.recallAt10)],
    ['Recall@100', fixed(result.recallAt100)],
    ['MRR@10', fixed(result.mrrAt10)],
    ['search p50', `${result.latencyMs.p50.toFixed(1)} ms`],
    ['search p95', `${result.latencyMs.p95.toFixed(1)} ms`],
  ];
  const lines = [
    `BEIR ${dataset} — ${result.mode} (embedding_model ${result.embeddingModel}, knowledge base ${result.knowledgeBaseId})`,
    `  ${result.queries} test queries; ${result.documents} documents → ${result.chunks} chunks in ${result.indexSeconds.toFixed(1)} s` +
      (result.failedFiles > 0 ? `, ${result.failedFiles} failed` : ''),
    `  ${'metric'.padEnd(12)}  value`,
    ...rows.map(([name, value]) => `  ${name.padEnd(12)}  ${value}`),
    ...result.notes.map((note) => `  note: ${note}`),
  ];
  return `${lines.join('\n')}\n`;
}
