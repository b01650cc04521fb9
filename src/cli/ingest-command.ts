/**
 * `cairn ingest <paths…> --kb <id|name> [--create]`: uploads files to a running Cairn through its
 * HTTP API (the same one SDK users call), attaches them in batches and shows progress until done.
 */
import { openAsBlob } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SingleBar } from 'cli-progress';
import pLimit from 'p-limit';

export interface IngestOptions {
  kb: string;
  create: boolean;
  baseUrl: string;
  apiKey: string;
  concurrency: number;
  embeddingModel?: string;
}

interface KbObject {
  id: string;
  name: string;
  file_counts: { in_progress: number; completed: number; failed: number; cancelled: number; total: number };
  chunk_count: number;
}

const BATCH_SIZE = 500;

async function* walk(target: string): AsyncGenerator<string> {
  const info = await stat(target);
  if (info.isFile()) {
    yield target;
    return;
  }
  for (const entry of await readdir(target, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    yield* walk(path.join(target, entry.name));
  }
}

class CairnClient {
  constructor(private readonly baseUrl: string, private readonly apiKey: string) {}

  async request<T>(method: string, route: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.baseUrl}${route}`, {
      method,
      headers: { authorization: `Bearer ${this.apiKey}`, ...(body instanceof FormData ? {} : { 'content-type': 'application/json' }) },
      body: body instanceof FormData ? body : body === undefined ? undefined : JSON.stringify(body),
    });
    const payload = (await response.json()) as T & { error?: { message: string } };
    if (!response.ok) throw new Error(`${method} ${route} → ${response.status}: ${payload.error?.message ?? 'unknown error'}`);
    return payload;
  }

  async findKnowledgeBase(idOrName: string): Promise<KbObject | undefined> {
    let after: string | undefined;
    for (;;) {
      const page = await this.request<{ data: KbObject[]; has_more: boolean; last_id: string | null }>(
        'GET', `/knowledge_bases?limit=100${after ? `&after=${after}` : ''}`,
      );
      const found = page.data.find((kb) => kb.id === idOrName || kb.name === idOrName);
      if (found || !page.has_more || !page.last_id) return found;
      after = page.last_id;
    }
  }

  async upload(file: string): Promise<string> {
    const form = new FormData();
    form.set('purpose', 'knowledge_base');
    form.set('file', await openAsBlob(file), path.basename(file));
    return (await this.request<{ id: string }>('POST', '/files', form)).id;
  }
}

export async function runIngest(paths: string[], options: IngestOptions, out: NodeJS.WriteStream = process.stderr): Promise<{ failed: number }> {
  const client = new CairnClient(options.baseUrl.replace(/\/+$/, ''), options.apiKey);
  let kb = await client.findKnowledgeBase(options.kb);
  if (!kb) {
    if (!options.create) throw new Error(`No knowledge base '${options.kb}'. Pass --create to create it.`);
    kb = await client.request<KbObject>('POST', '/knowledge_bases', {
      name: options.kb,
      ...(options.embeddingModel ? { embedding_model: options.embeddingModel } : {}),
    });
  }
  const files: string[] = [];
  for (const target of paths) for await (const file of walk(target)) files.push(file);
  const baseline = kb.file_counts;
  const bar = new SingleBar(
    { format: 'ingest [{bar}] {value}/{total} files | uploaded {uploaded} | {rate} chunks/s | failed {failed}', stream: out, hideCursor: true },
  );
  bar.start(files.length, 0, { uploaded: 0, rate: '0', failed: 0 });
  const started = performance.now();
  const limit = pLimit(options.concurrency);
  let uploaded = 0;
  const fileIds = await Promise.all(
    files.map((file) =>
      limit(async () => {
        const id = await client.upload(file);
        bar.update({ uploaded: (uploaded += 1) });
        return id;
      }),
    ),
  );
  for (let start = 0; start < fileIds.length; start += BATCH_SIZE) {
    await client.request('POST', `/knowledge_bases/${kb.id}/file_batches`, { file_ids: fileIds.slice(start, start + BATCH_SIZE) });
  }
  let current = kb;
  for (;;) {
    current = await client.request<KbObject>('GET', `/knowledge_bases/${kb.id}`);
    const done = current.file_counts.completed + current.file_counts.failed + current.file_counts.cancelled
      - (baseline.completed + baseline.failed + baseline.cancelled);
    const seconds = (performance.now() - started) / 1000;
    bar.update(Math.min(done, files.length), {
      rate: ((current.chunk_count - kb.chunk_count) / seconds).toFixed(0),
      failed: current.file_counts.failed - baseline.failed,
    });
    if (current.file_counts.in_progress === 0) break;
    await sleep(250);
  }
  bar.stop();
  return { failed: current.file_counts.failed - baseline.failed };
}
