/**
 * What bench/chaos.ts does to Cairn while processes are being killed: a seeded random mix of
 * upload / identical-bytes upload across projects (racing a delete of the other project's copy) /
 * delete / attach / re-attach with other chunking / detach / search / chat with knowledge bases,
 * through the official `openai` SDK. It remembers what every answered request established (which
 * uploads exist with which bytes, which objects belong to whom), for the invariant checks.
 */
import OpenAI, { APIConnectionError, APIError, toFile } from 'openai';
import type { Cluster, Tenant, Violation } from './chaos-cluster.ts';
import { seededRandom } from './retrieval-corpus.ts';

export { seededRandom };

const pick = <T>(random: () => number, items: readonly T[]): T | undefined => (items.length ? items[Math.floor(random() * items.length)] : undefined);

/** A pseudo-vocabulary, so that files are text every parser accepts and searches have words to find. */
const SYLLABLES = ['ka', 'ro', 'mi', 'tan', 'vel', 'sor', 'qui', 'lem', 'dra', 'zu', 'ne', 'path', 'ost', 'ri', 'fal'];
function makeVocabulary(random: () => number): string[] {
  return Array.from({ length: 400 }, () => Array.from({ length: 2 + Math.floor(random() * 3) }, () => pick(random, SYLLABLES)).join(''));
}

export const OPERATION_KINDS = ['upload', 'upload_same', 'delete', 'attach', 'reattach', 'detach', 'search', 'chat'] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number] | 'race_delete' | 'partial_upload' | 'big_upload' | 'big_attach';
const WEIGHTS: Record<(typeof OPERATION_KINDS)[number], number> = {
  upload: 14, upload_same: 22, delete: 8, attach: 16, reattach: 8, detach: 6, search: 14, chat: 8,
};

/** An upload the API answered: its bytes must stay retrievable until we delete it. */
export interface KnownFile {
  id: string;
  owner: number;
  bytes: Buffer;
  /** `maybe` when a delete was sent but not answered: either outcome is fine. */
  deleted: 'no' | 'yes' | 'maybe';
  /** Uploaded while the other project deleted a file with the same bytes (issue 9 (1)'s race). */
  raced?: boolean;
}

export interface Outcome {
  ok: number;
  /** Answered with 4xx: expected now and then (the file a concurrent delete removed). */
  rejected: number;
  /** The first few 4xx messages, to tell expected refusals from bugs. */
  rejectedExamples: string[];
  /** No answer: the connection failed (a process was being killed). */
  unanswered: number;
  /** Answered with 5xx. */
  failed: number;
}

export class Workload {
  readonly files = new Map<string, KnownFile>();
  /** Knowledge base ids per tenant, created at setup. */
  readonly kbs: string[][] = [];
  /** Files we attached, as `kb/file`; re-attach and detach pick from these. */
  private readonly attached: Array<Set<string>> = [];
  readonly outcomes = new Map<OperationKind, Outcome>();
  readonly violations: Violation[] = [];
  private readonly vocabulary: string[];

  constructor(private readonly cluster: Cluster, seed: number) {
    this.vocabulary = makeVocabulary(seededRandom(seed ^ 0x5eed));
  }

  /** A fresh client per request: the API's port changes when it restarts. No retries: a kill must show. */
  client(tenant: number): OpenAI {
    return new OpenAI({ apiKey: this.cluster.tenants[tenant]!.key, baseURL: this.cluster.baseUrl(), maxRetries: 0, timeout: 60_000 });
  }

  get tenants(): Tenant[] {
    return this.cluster.tenants;
  }

  async setup(): Promise<void> {
    for (let tenant = 0; tenant < this.tenants.length; tenant++) {
      const client = this.client(tenant);
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) {
        const kb = await client.vectorStores.create({ name: `chaos-${tenant}-${i}`, embedding_model: 'none' } as OpenAI.VectorStoreCreateParams);
        ids.push(kb.id);
      }
      this.kbs.push(ids);
      this.attached.push(new Set());
    }
  }

  /** Runs operations chosen by `random` while `keepGoing` says so. */
  async lane(random: () => number, keepGoing: () => boolean): Promise<void> {
    const total = Object.values(WEIGHTS).reduce((a, b) => a + b, 0);
    while (keepGoing()) {
      await this.cluster.whenUp();
      let roll = random() * total;
      const kind = OPERATION_KINDS.find((candidate) => (roll -= WEIGHTS[candidate]) < 0) ?? 'search';
      const tenant = Math.floor(random() * this.tenants.length);
      await this.run(kind, tenant, random);
    }
  }

  private async run(kind: (typeof OPERATION_KINDS)[number], tenant: number, random: () => number): Promise<void> {
    switch (kind) {
      case 'upload':
        await this.upload(tenant, this.document(random), 'upload');
        return;
      case 'upload_same': {
        // Identical bytes in both projects. Half of the time issue 9 (1)'s loop: the other project
        // uploads a fresh document, then deletes it while this one uploads the same bytes.
        const other = random() < 0.5 ? pick(random, this.liveFiles(1 - tenant)) : undefined;
        if (other) {
          await this.upload(tenant, other.bytes, 'upload_same');
          return;
        }
        const fresh = await this.upload(1 - tenant, this.document(random), 'upload');
        if (!fresh) return;
        const [copy] = await Promise.all([this.upload(tenant, fresh.bytes, 'upload_same'), this.delete(fresh, 'race_delete')]);
        if (copy) copy.raced = true;
        return;
      }
      case 'delete': {
        const file = pick(random, this.liveFiles(tenant));
        if (file) await this.delete(file, 'delete');
        return;
      }
      case 'attach': {
        const file = pick(random, this.liveFiles(tenant));
        if (file) await this.attach(tenant, pick(random, this.kbs[tenant]!)!, file.id, random, 'attach');
        return;
      }
      case 'reattach': {
        const pair = pick(random, [...this.attached[tenant]!]);
        if (pair) await this.attach(tenant, pair.split('/')[0]!, pair.split('/')[1]!, random, 'reattach');
        return;
      }
      case 'detach': {
        const pair = pick(random, [...this.attached[tenant]!]);
        if (!pair) return;
        const [kb, file] = pair.split('/') as [string, string];
        this.attached[tenant]!.delete(pair);
        await this.record('detach', () => this.client(tenant).vectorStores.files.delete(file, { vector_store_id: kb }));
        return;
      }
      case 'search':
        await this.record('search', () => this.client(tenant).vectorStores.search(pick(random, this.kbs[tenant]!)!, { query: this.words(random, 3) }));
        return;
      case 'chat': {
        const body = {
          model: 'extractive',
          messages: [{ role: 'user', content: `What about ${this.words(random, 4)}?` }],
          knowledge_bases: this.kbs[tenant],
        } as OpenAI.ChatCompletionCreateParamsNonStreaming;
        await this.record('chat', () => this.client(tenant).chat.completions.create(body));
        return;
      }
    }
  }

  liveFiles(tenant: number): KnownFile[] {
    return [...this.files.values()].filter((file) => file.owner === tenant && file.deleted === 'no');
  }

  private async upload(tenant: number, bytes: Buffer, kind: OperationKind): Promise<KnownFile | undefined> {
    const file = await this.record(kind, async () =>
      this.client(tenant).files.create({ file: await toFile(bytes, `chaos-${bytes.length}.txt`), purpose: 'assistants' }),
    );
    if (!file) return undefined;
    const known: KnownFile = { id: file.id, owner: tenant, bytes, deleted: 'no' };
    this.files.set(file.id, known);
    return known;
  }

  private async delete(file: KnownFile, kind: OperationKind): Promise<void> {
    file.deleted = 'maybe';
    const answer = await this.record(kind, () => this.client(file.owner).files.delete(file.id));
    if (answer) file.deleted = 'yes';
  }

  private async attach(tenant: number, kb: string, fileId: string, random: () => number, kind: OperationKind): Promise<void> {
    const max = 100 + Math.floor(random() * 700);
    const chunking = { type: 'static' as const, static: { max_chunk_size_tokens: max, chunk_overlap_tokens: Math.floor(random() * (max / 2)) } };
    const answer = await this.record(kind, () => this.client(tenant).vectorStores.files.create(kb, { file_id: fileId, chunking_strategy: chunking }));
    if (answer) this.attached[tenant]!.add(`${kb}/${fileId}`);
  }

  /** Runs one request, counts its outcome; 500s are violations (bad input is a 4xx, never a 500). */
  private async record<T>(kind: OperationKind, request: () => Promise<T>): Promise<T | undefined> {
    const outcome = this.outcomes.get(kind) ?? { ok: 0, rejected: 0, rejectedExamples: [], unanswered: 0, failed: 0 };
    this.outcomes.set(kind, outcome);
    try {
      const result = await request();
      outcome.ok += 1;
      return result;
    } catch (error) {
      if (error instanceof APIConnectionError) outcome.unanswered += 1;
      else if (error instanceof APIError && error.status !== undefined && error.status < 500) {
        outcome.rejected += 1;
        if (outcome.rejectedExamples.length < 2) outcome.rejectedExamples.push(`${error.status} ${error.message.slice(0, 140)}`);
      }
      else if (error instanceof APIError && error.status !== undefined) {
        outcome.failed += 1;
        if (error.status === 500) this.violations.push({ invariant: 'http-500', detail: `${kind}: ${error.message.slice(0, 200)}` });
      } else outcome.unanswered += 1; // e.g. a reply cut off mid-body by a kill
      return undefined;
    }
  }

  /** A text document of 200 B to 24 KB, mostly small (many uploads), sometimes large (several chunks). */
  document(random: () => number): Buffer {
    const size = random() < 0.8 ? 200 + Math.floor(random() * 2_000) : 4_000 + Math.floor(random() * 20_000);
    const sentences: string[] = [];
    let length = 0;
    while (length < size) {
      const sentence = `${this.words(random, 5 + Math.floor(random() * 10))}.`;
      sentences.push(sentence[0]!.toUpperCase() + sentence.slice(1));
      length += sentence.length + 1;
    }
    return Buffer.from(`${sentences.join(' ')}\n${random().toString(36)}`); // the suffix makes documents distinct
  }

  /**
   * A CSV of about `megabytes` MB, uploaded and attached: a job long enough for a kill to land in
   * it, and (parsed on the event loop today) long enough to outlast a short worker lock (issue 9 (4)).
   */
  async bigAttach(tenant: number, megabytes: number, random: () => number): Promise<void> {
    const rows = ['id,topic,text'];
    let size = 0;
    for (let i = 0; size < megabytes * 1_000_000; i++) {
      const row = `${i},${this.words(random, 1)},"${this.words(random, 12)}"`;
      rows.push(row);
      size += row.length + 1;
    }
    const bytes = Buffer.from(rows.join('\n'));
    const file = await this.record('big_upload', async () =>
      this.client(tenant).files.create({ file: await toFile(bytes, `chaos-big.csv`), purpose: 'assistants' }),
    );
    if (!file) return;
    this.files.set(file.id, { id: file.id, owner: tenant, bytes, deleted: 'no' });
    const kb = pick(random, this.kbs[tenant]!)!;
    const answer = await this.record('big_attach', () => this.client(tenant).vectorStores.files.create(kb, { file_id: file.id }));
    if (answer) this.attached[tenant]!.add(`${kb}/${file.id}`);
  }

  /**
   * An upload that sends half of its body and then waits: what a client has in flight when the API
   * is SIGKILLed (issue 9 (5)). Resolves once the API has staged some of it; `cancel` ends it.
   */
  async startPartialUpload(tenant: number, staged: () => Promise<boolean>): Promise<{ cancel(): void }> {
    const outcome = this.outcomes.get('partial_upload') ?? { ok: 0, rejected: 0, rejectedExamples: [], unanswered: 0, failed: 0 };
    this.outcomes.set('partial_upload', outcome);
    const boundary = `chaos${Date.now()}`;
    const head = `--${boundary}\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="partial.txt"\r\ncontent-type: text/plain\r\n\r\n`;
    const stop = new AbortController();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(head));
        controller.enqueue(new Uint8Array(256 * 1024).fill(97)); // and never the rest
      },
    });
    const request = fetch(`${this.cluster.baseUrl()}/files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.tenants[tenant]!.key}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + 1024 * 1024) },
      body,
      duplex: 'half',
      signal: stop.signal,
    } as RequestInit);
    request.then(() => (outcome.ok += 1), () => (outcome.unanswered += 1));
    const deadline = Date.now() + 5_000;
    while (!(await staged()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    return { cancel: () => stop.abort() };
  }

  private words(random: () => number, count: number): string {
    return Array.from({ length: count }, () => pick(random, this.vocabulary)).join(' ');
  }
}
