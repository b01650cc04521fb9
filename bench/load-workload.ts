/**
 * The work of bench/load.ts: small seeded Markdown documents and questions about them, and the
 * four operations its clients mix, each made of official `openai` SDK calls (maxRetries 0) whose
 * latencies and errors are recorded per route.
 *
 *   chat     POST /v1/chat/completions, non-streaming, no knowledge base
 *   stream   POST /v1/chat/completions, `stream: true`, `knowledge_bases: [seed, uploads]`: retrieval
 *            plus the relayed SSE stream, read to the end (also recorded: time to the first chunk)
 *   search   POST /v1/vector_stores/{seed}/search
 *   upload   POST /v1/files (a small Markdown file), POST /v1/vector_stores/{uploads}/files (attach:
 *            ingestion runs in Cairn's in-process queue), and, once more than `keepUploads` uploaded
 *            files exist, DELETE /v1/files/{oldest}: the uploads KB stays bounded, so that memory
 *            measures leaks rather than data growth
 */
import OpenAI, { toFile } from 'openai';
import { seededRandom } from './retrieval-corpus.ts';

export const OPERATIONS = ['chat', 'stream', 'search', 'upload'] as const;
export type Operation = (typeof OPERATIONS)[number];

const TOPICS = [
  'lighthouse', 'glacier', 'orchard', 'harbour', 'observatory', 'vineyard', 'foundry', 'monastery',
  'railway', 'beehive', 'tannery', 'windmill', 'aqueduct', 'greenhouse', 'shipyard', 'quarry',
];
const SUBJECTS = ['keeper', 'engineer', 'apprentice', 'surveyor', 'inspector', 'gardener', 'archivist', 'pilot'];
const VERBS = ['inspects', 'repairs', 'records', 'cleans', 'measures', 'paints', 'tests', 'maps'];
const OBJECTS = ['the copper valves', 'the north wall', 'the signal lamp', 'the water gauge', 'the oak beams', 'the iron gate', 'the storage cellar', 'the weather vane'];
const TIMES = ['every Monday', 'before each storm', 'at dawn', 'in early spring', 'after the harvest', 'twice a month', 'at midnight', 'during the thaw'];

/** Picks from a list with a seeded random source. */
const picker = (random: () => number) => <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

/** A Markdown document of 4–8 sections about one topic (~1–3 KB), deterministic for a seed. */
export function document(seed: number): { name: string; text: string } {
  const random = seededRandom(seed);
  const pick = picker(random);
  const topic = TOPICS[seed % TOPICS.length]!;
  const sections: string[] = [`# The ${topic}, note ${seed}`];
  const count = 4 + Math.floor(random() * 5);
  for (let i = 0; i < count; i += 1) {
    const sentences = Array.from({ length: 3 + Math.floor(random() * 4) }, () => `The ${pick(SUBJECTS)} of the ${topic} ${pick(VERBS)} ${pick(OBJECTS)} ${pick(TIMES)}.`);
    sections.push(`## ${pick(SUBJECTS)} duties ${i + 1}\n\n${sentences.join(' ')}`);
  }
  return { name: `${topic}-${seed}.md`, text: `${sections.join('\n\n')}\n` };
}

/** A question whose words occur in the documents: every one has lexical matches. */
export function question(random: () => number): string {
  const pick = picker(random);
  return `When does the ${pick(SUBJECTS)} of the ${pick(TOPICS)} check ${pick(OBJECTS)}?`;
}

/** Latencies (ms) and errors of one route; only latencies inside the measured window are kept. */
export interface RouteStats {
  latencies: number[];
  /** Requests completed inside the measured window (= latencies.length, kept for clarity). */
  measured: number;
  errors: number;
  firstErrors: string[];
}

export class Recorder {
  readonly routes = new Map<string, RouteStats>();
  measuring = false;
  /** Requests completed over the whole run, warm-up included. */
  completed = 0;

  route(name: string): RouteStats {
    let stats = this.routes.get(name);
    if (!stats) this.routes.set(name, (stats = { latencies: [], measured: 0, errors: 0, firstErrors: [] }));
    return stats;
  }

  /** Runs one request of `route`, recording its latency, or its error (and then rethrowing it). */
  async time<T>(route: string, call: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await call();
      this.record(route, performance.now() - started);
      return result;
    } catch (error) {
      this.fail(route, error);
      throw error;
    }
  }

  /** Records a completed request; `alsoCounts: false` for a second measurement of the same request. */
  record(route: string, ms: number, alsoCounts = true): void {
    if (alsoCounts) this.completed += 1;
    if (!this.measuring) return;
    const stats = this.route(route);
    stats.latencies.push(ms);
    stats.measured += 1;
  }

  fail(route: string, error: unknown): void {
    const stats = this.route(route);
    stats.errors += 1;
    if (stats.firstErrors.length < 3) stats.firstErrors.push(error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error));
  }
}

/** An error that is not an HTTP failure: a reply that is well-formed but wrong. */
class UnexpectedReply extends Error {}

export interface Workload {
  seedKbId: string;
  uploadsKbId: string;
  /** Upload operations allowed in the whole run; after that, `upload` turns into `search`. */
  maxUploads: number;
  /** Uploaded files kept at once; older ones are deleted. */
  keepUploads: number;
  recorder: Recorder;
}

/** State shared by every client: the uploaded files still alive (oldest first), the upload count. */
export class SharedUploads {
  readonly alive: string[] = [];
  started = 0;
  cappedAt: number | undefined;
}

/** One client: an SDK instance of its own and a seeded random source; loops until `keepGoing()` is false. */
export async function runClient(index: number, client: OpenAI, work: Workload, uploads: SharedUploads, weights: Record<Operation, number>, keepGoing: () => boolean): Promise<void> {
  const random = seededRandom(1_000 + index);
  const total = OPERATIONS.reduce((sum, op) => sum + weights[op], 0);
  const choose = (): Operation => {
    let r = random() * total;
    for (const op of OPERATIONS) if ((r -= weights[op]) < 0) return op;
    return 'chat';
  };
  const rec = work.recorder;
  while (keepGoing()) {
    let op = choose();
    if (op === 'upload' && uploads.started >= work.maxUploads) {
      uploads.cappedAt ??= performance.now();
      op = 'search';
    }
    try {
      if (op === 'chat') await chat(client, rec, random);
      else if (op === 'stream') await stream(client, work, random);
      else if (op === 'search') await search(client, work, random);
      else await upload(client, work, uploads, index);
    } catch {
      // recorded by Recorder.time / fail; the client goes on with its next request
    }
  }
}

async function chat(client: OpenAI, rec: Recorder, random: () => number): Promise<void> {
  const reply = await rec.time('chat', () => client.chat.completions.create({ model: 'bench-model', messages: [{ role: 'user', content: question(random) }] }));
  if (!reply.choices[0]?.message.content) rec.fail('chat', new UnexpectedReply('no content in the reply'));
}

async function stream(client: OpenAI, work: Workload, random: () => number): Promise<void> {
  const rec = work.recorder;
  const started = performance.now();
  let firstChunkMs: number | undefined;
  let content = '';
  try {
    const body = { model: 'bench-model', stream: true as const, messages: [{ role: 'user' as const, content: question(random) }] };
    const chunks = await client.chat.completions.create({ ...body, ...({ knowledge_bases: [work.seedKbId, work.uploadsKbId] } as object) });
    for await (const chunk of chunks) {
      firstChunkMs ??= performance.now() - started;
      content += chunk.choices[0]?.delta.content ?? '';
    }
  } catch (error) {
    rec.fail('stream', error);
    return;
  }
  if (!content) return rec.fail('stream', new UnexpectedReply('the stream carried no content'));
  rec.record('stream', performance.now() - started);
  rec.record('stream (first chunk)', firstChunkMs!, false);
}

async function search(client: OpenAI, work: Workload, random: () => number): Promise<void> {
  const rec = work.recorder;
  const page = await rec.time('search', () => client.vectorStores.search(work.seedKbId, { query: question(random), max_num_results: 5 }));
  if (page.data.length === 0) rec.fail('search', new UnexpectedReply('no results for a question with matching words'));
}

async function upload(client: OpenAI, work: Workload, uploads: SharedUploads, clientIndex: number): Promise<void> {
  const rec = work.recorder;
  const n = uploads.started++;
  const doc = document(100_000 + n * 97 + clientIndex);
  const file = await rec.time('upload: files.create', async () =>
    client.files.create({ file: await toFile(Buffer.from(doc.text), doc.name, { type: 'text/markdown' }), purpose: 'assistants' }),
  );
  await rec.time('upload: attach', () => client.vectorStores.files.create(work.uploadsKbId, { file_id: file.id }));
  uploads.alive.push(file.id);
  while (uploads.alive.length > work.keepUploads) {
    const oldest = uploads.alive.shift()!;
    await rec.time('upload: files.delete', () => client.files.delete(oldest));
  }
}
