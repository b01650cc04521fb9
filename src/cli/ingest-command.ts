/**
 * `cairn ingest <paths…> --kb <id|name> [--create] [--delete]`: syncs files and folders into a
 * knowledge base of a running Cairn through its HTTP API. Unchanged files (same path and content
 * hash, see ingest-sync.ts) are skipped, changed ones replaced, and with --delete files gone from
 * the folders are detached; a second run over the same folder uploads nothing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pLimit from 'p-limit';
import { CairnApiClient, type KbFileObject, type KbObject } from './cairn-api-client.ts';
import { CliError } from './cli-error.ts';
import { createIngestProgress } from './ingest-progress.ts';
import { collectLocalFiles, MAX_KEY_LENGTH, planSync, type LocalFile } from './ingest-sync.ts';

export interface IngestOptions {
  kb: string;
  create: boolean;
  baseUrl: string;
  apiKey: string;
  concurrency: number;
  embeddingModel?: string;
  /** Detach files that were ingested from these folders and are gone from them. */
  delete?: boolean;
}

export interface IngestSummary {
  kbId: string;
  uploaded: number;
  replaced: number;
  skipped: number;
  failed: number;
  detached: number;
  chunks: number;
  seconds: number;
}

const BATCH_SIZE = 500;

async function knowledgeBase(client: CairnApiClient, options: IngestOptions): Promise<KbObject> {
  const existing = await client.findKnowledgeBase(options.kb);
  if (existing) return existing;
  if (!options.create) throw new CliError(`no knowledge base '${options.kb}' at ${client.baseUrl}: pass --create to create it`);
  return client.request<KbObject>('POST', '/knowledge_bases', {
    name: options.kb,
    ...(options.embeddingModel ? { embedding_model: options.embeddingModel } : {}),
  });
}

const attributesOf = (file: LocalFile) => (file.key.length <= MAX_KEY_LENGTH ? { path: file.key, sha256: file.sha256 } : { sha256: file.sha256 });

export async function runIngest(
  paths: string[],
  options: IngestOptions,
  out: NodeJS.WriteStream = process.stderr,
  summaryOut: NodeJS.WritableStream = process.stdout,
): Promise<IngestSummary> {
  const started = performance.now();
  const client = new CairnApiClient(options.baseUrl.replace(/\/+$/, ''), options.apiKey);
  const kb = await knowledgeBase(client, options);
  const local = await collectLocalFiles(paths).catch((error: NodeJS.ErrnoException) => {
    throw new CliError(error.code === 'ENOENT' ? `no such file or folder: ${error.path}` : `cannot read ${error.path ?? paths.join(', ')}: ${error.message}`, 2);
  });
  const remote = await client.listAll<KbFileObject>(`/knowledge_bases/${kb.id}/files`);
  const plan = planSync(local.files, remote, { deleteMissing: options.delete === true, prefixes: local.prefixes });

  const progress = createIngestProgress(out);
  progress.start(plan.upload.length);
  for (const file of plan.skip) progress.file('skipped', file.key, 'unchanged');
  const limit = pLimit(options.concurrency);
  let uploadFailures = 0;
  let replaced = 0;
  const uploaded = (
    await Promise.all(
      plan.upload.map((file) =>
        limit(async () => {
          try {
            const id = await client.upload(file.absolute, file.key.split('/').at(-1)!);
            const changed = plan.changed.has(file.key);
            if (changed) replaced += 1;
            progress.file(changed ? 'replaced' : 'uploaded', file.key);
            return { file_id: id, key: file.key, attributes: attributesOf(file) };
          } catch (error) {
            if (error instanceof CliError) throw error; // the server is gone or refuses the key: stop
            uploadFailures += 1;
            progress.file('failed', file.key, (error as Error).message);
            return undefined;
          }
        }),
      ),
    )
  ).filter((entry) => entry !== undefined);
  for (let start = 0; start < uploaded.length; start += BATCH_SIZE) {
    const files = uploaded.slice(start, start + BATCH_SIZE).map(({ file_id, attributes }) => ({ file_id, attributes }));
    await client.request('POST', `/knowledge_bases/${kb.id}/file_batches`, { files });
  }

  const baseline = kb.file_counts;
  let current = kb;
  while (uploaded.length > 0) {
    current = await client.request<KbObject>('GET', `/knowledge_bases/${kb.id}`);
    const done = current.file_counts.completed + current.file_counts.failed + current.file_counts.cancelled - (baseline.completed + baseline.failed + baseline.cancelled);
    progress.ingesting(Math.min(done, uploaded.length), uploaded.length, current.chunk_count - kb.chunk_count, current.file_counts.failed - baseline.failed);
    if (current.file_counts.in_progress === 0) break;
    await sleep(250);
  }
  progress.stop();

  // Old versions go only once their new version is in, so searches never miss a file in between
  // and a change that fails to ingest keeps the old version searchable.
  const failedKeys = new Set<string>(plan.upload.map((file) => file.key));
  if (uploaded.length > 0) {
    const newIds = new Map(uploaded.map((entry) => [entry.file_id, entry.key]));
    for (const file of await client.listAll<KbFileObject>(`/knowledge_bases/${kb.id}/files`)) {
      const key = newIds.get(file.id);
      if (key !== undefined && file.status === 'completed') failedKeys.delete(key);
    }
  }
  for (const file of plan.superseded) {
    if (!failedKeys.has(String(file.attributes?.path))) await client.remove(kb.id, file.id);
  }
  for (const file of plan.gone) {
    await client.remove(kb.id, file.id);
    progress.file('detached', String(file.attributes?.path ?? file.id));
  }

  const summary: IngestSummary = {
    kbId: kb.id,
    uploaded: uploaded.length,
    replaced,
    skipped: plan.skip.length,
    failed: uploadFailures + (current.file_counts.failed - baseline.failed),
    detached: plan.gone.length,
    chunks: current.chunk_count - kb.chunk_count,
    seconds: (performance.now() - started) / 1000,
  };
  summaryOut.write(
    `ingest ${kb.name} (${kb.id}): ${summary.uploaded} uploaded (${summary.replaced} replaced), ${summary.skipped} skipped (unchanged), ` +
      `${summary.failed} failed, ${summary.detached} detached; ${summary.chunks} chunks in ${summary.seconds.toFixed(1)} s\n`,
  );
  return summary;
}
