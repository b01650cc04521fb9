/**
 * What must hold after every round of bench/chaos.ts, once the processes are back and quiet:
 *   content   every answered upload we did not delete is retrievable with identical bytes
 *   settled   every attached file ends `completed` or `failed` within the settle bound
 *   points    Qdrant holds, per knowledge base, exactly the sum of its completed files'
 *             `chunk_count` points, none of them with `ready: false`
 *   isolation neither project lists or reads the other's files and knowledge bases
 *   staging   nothing is left in the blob store's staging directory
 * (orphan-qdrant and cli-key are checked at the kills themselves, in chaos-cluster.ts.)
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { QdrantClient } from '@qdrant/js-client-rest';
import OpenAI from 'openai';
import { LEXICAL_COLLECTION } from '../src/vectors/qdrant-chunk-store.ts';
import { REQUEST_TIMEOUT_MS, type Cluster, type Violation } from './chaos-cluster.ts';
import type { Workload } from './chaos-workload.ts';

type KbFile = { id: string; status: string; chunk_count?: number; last_error?: { code: string; message: string } | null };

export interface SettleReport {
  /** Files that were still `in_progress` when the bound ran out. */
  stuck: number;
  failed: Array<{ kb: string; file: string; error: string }>;
}

/** Every file of every knowledge base of the run, as the API lists it. */
async function listKbFiles(workload: Workload): Promise<Map<string, KbFile[]>> {
  const result = new Map<string, KbFile[]>();
  for (let tenant = 0; tenant < workload.tenants.length; tenant++) {
    const client = workload.client(tenant);
    for (const kb of workload.kbs[tenant]!) {
      const files: KbFile[] = [];
      for await (const file of client.vectorStores.files.list(kb, { limit: 100 })) files.push(file as unknown as KbFile);
      result.set(kb, files);
    }
  }
  return result;
}

/** Waits up to `boundMs` for every attached file to leave `in_progress`; those that don't are violations. */
export async function settle(workload: Workload, boundMs: number, violations: Violation[]): Promise<SettleReport> {
  const deadline = Date.now() + boundMs;
  let files = await listKbFiles(workload);
  const pending = (): Array<[string, KbFile]> => [...files].flatMap(([kb, list]) => list.filter((f) => f.status === 'in_progress').map((f): [string, KbFile] => [kb, f]));
  while (pending().length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    files = await listKbFiles(workload);
  }
  for (const [kb, file] of pending()) {
    const size = workload.files.get(file.id)?.bytes.length;
    violations.push({ invariant: 'settled', key: file.id, detail: `${kb}/${file.id}${size === undefined ? '' : ` (${size} B)`} still in_progress ${Math.round(boundMs / 1000)} s after the round` });
  }
  const failed = [...files].flatMap(([kb, list]) =>
    list.filter((f) => f.status === 'failed').map((f) => ({ kb, file: f.id, error: `${f.last_error?.code ?? '?'}: ${f.last_error?.message ?? ''}`.slice(0, 160) })),
  );
  return { stuck: pending().length, failed };
}

export async function checkContent(workload: Workload, violations: Violation[]): Promise<number> {
  let checked = 0;
  for (const file of workload.files.values()) {
    if (file.deleted === 'yes') continue;
    const raced = file.raced ? ', uploaded while the other project deleted the same bytes' : '';
    const client = workload.client(file.owner);
    let body: Buffer;
    try {
      await client.files.retrieve(file.id);
      const response = await client.files.content(file.id);
      body = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      if (file.deleted === 'maybe' && error instanceof OpenAI.NotFoundError) {
        file.deleted = 'yes'; // the unanswered delete did happen
        continue;
      }
      violations.push({ invariant: 'content', detail: `${file.id} (${file.bytes.length} B${raced}): ${(error as Error).message.slice(0, 160)}` });
      file.deleted = 'yes'; // reported once
      continue;
    }
    checked += 1;
    if (file.deleted === 'maybe') file.deleted = 'no'; // the unanswered delete did not happen
    if (!body.equals(file.bytes)) {
      violations.push({ invariant: 'content', detail: `${file.id}: ${body.length} B read back, ${file.bytes.length} B uploaded${raced}, bytes differ` });
      file.deleted = 'yes';
    }
  }
  return checked;
}

/** Qdrant points per knowledge base = sum of its completed files' chunk_count, and all of them published. */
export async function checkPoints(cluster: Cluster, workload: Workload, violations: Violation[]): Promise<void> {
  const qdrant = new QdrantClient({ url: cluster.qdrantUrl(), checkCompatibility: false });
  if (!(await qdrant.collectionExists(LEXICAL_COLLECTION)).exists) return;
  const files = await listKbFiles(workload);
  for (const [kb, list] of files) {
    if (list.some((file) => file.status === 'in_progress')) continue; // reported by `settled`
    const expected = list.filter((file) => file.status === 'completed').reduce((sum, file) => sum + (file.chunk_count ?? 0), 0);
    const count = async (extra: object[]): Promise<number> =>
      (await qdrant.count(LEXICAL_COLLECTION, { filter: { must: [{ key: 'kb_id', match: { value: kb } }, ...extra] }, exact: true })).count;
    const [total, unpublished] = await Promise.all([count([]), count([{ key: 'ready', match: { value: false } }])]);
    if (total === expected && unpublished === 0) continue;
    const culprits = await filesOutOfStep(qdrant, kb, list);
    if (total !== expected) violations.push({ invariant: 'points', key: `${kb} count`, detail: `${kb}: ${total} points in Qdrant, completed files' chunk_count sums to ${expected}; ${culprits}` });
    if (unpublished > 0) violations.push({ invariant: 'points', key: `${kb} unpublished`, detail: `${kb}: ${unpublished} points with ready=false and no file in progress; ${culprits}` });
  }
}

/** Which files a knowledge base's points disagree about, e.g. `file-x (detached): 12 points, 12 unpublished`. */
async function filesOutOfStep(qdrant: QdrantClient, kb: string, list: KbFile[]): Promise<string> {
  const perFile = new Map<string, { points: number; unpublished: number }>();
  let offset: string | number | Record<string, unknown> | null | undefined;
  do {
    const page = await qdrant.scroll(LEXICAL_COLLECTION, {
      filter: { must: [{ key: 'kb_id', match: { value: kb } }] }, with_payload: ['file_id', 'ready'], with_vector: false, limit: 1_000, offset: offset ?? undefined,
    });
    for (const point of page.points) {
      const entry = perFile.get(String(point.payload?.file_id)) ?? { points: 0, unpublished: 0 };
      entry.points += 1;
      if (point.payload?.ready !== true) entry.unpublished += 1;
      perFile.set(String(point.payload?.file_id), entry);
    }
    offset = page.next_page_offset as typeof offset;
  } while (offset !== null && offset !== undefined);
  const status = new Map(list.map((file) => [file.id, file]));
  const out: string[] = [];
  for (const [fileId, { points, unpublished }] of perFile) {
    const file = status.get(fileId);
    const expected = file?.status === 'completed' ? (file.chunk_count ?? 0) : 0;
    if (points !== expected || unpublished > 0) {
      out.push(`${fileId} (${file ? `${file.status}, chunk_count ${file.chunk_count ?? 0}` : 'not attached'}): ${points} points, ${unpublished} unpublished`);
    }
  }
  for (const file of list) {
    if (file.status === 'completed' && !perFile.has(file.id) && (file.chunk_count ?? 0) > 0) out.push(`${file.id} (completed, chunk_count ${file.chunk_count}): no points`);
  }
  return out.slice(0, 3).join('; ') || 'no single file to blame';
}

/** Neither project lists or reads the other's objects. */
export async function checkIsolation(workload: Workload, violations: Violation[]): Promise<void> {
  for (let tenant = 0; tenant < workload.tenants.length; tenant++) {
    const client = workload.client(tenant);
    const foreignFiles = new Set([...workload.files.values()].filter((file) => file.owner !== tenant).map((file) => file.id));
    const foreignKbs = new Set(workload.kbs.filter((_, owner) => owner !== tenant).flat());
    for await (const file of client.files.list({ limit: 100 })) {
      if (foreignFiles.has(file.id)) violations.push({ invariant: 'isolation', key: file.id, detail: `project ${tenant} lists file ${file.id} of another project` });
    }
    for await (const kb of client.vectorStores.list({ limit: 100 })) {
      if (foreignKbs.has(kb.id)) violations.push({ invariant: 'isolation', key: kb.id, detail: `project ${tenant} lists knowledge base ${kb.id} of another project` });
    }
    const sample = [...foreignFiles].at(-1);
    if (sample) {
      const status = await client.files.retrieve(sample).then(() => 200, (error: unknown) => (error instanceof OpenAI.APIError ? error.status : -1));
      if (status !== 404) violations.push({ invariant: 'isolation', key: `read ${sample}`, detail: `project ${tenant} reading file ${sample} of another project got ${status}, not 404` });
    }
  }
}

/**
 * Nothing may remain in staging past the sweeper's bound (issue 9 (5)): a partial upload a kill left
 * behind is removed once older than the request timeout + 60 s, at start or by the periodic sweep
 * (every request timeout). A younger one is still within its grace and is checked again later.
 */
export async function checkStaging(cluster: Cluster, violations: Violation[]): Promise<void> {
  const staging = path.join(cluster.dataDir, 'blobs', 'staging');
  const names = await readdir(staging).catch(() => [] as string[]);
  const bound = STAGING_BOUND_MS;
  for (const name of names) {
    const { size, mtimeMs } = await stat(path.join(staging, name)).catch(() => ({ size: -1, mtimeMs: Date.now() }));
    if (size >= 0 && Date.now() - mtimeMs > bound) {
      violations.push({ invariant: 'staging', key: name, detail: `blobs/staging/${name} (${size} B) left behind ${Math.round((Date.now() - mtimeMs) / 1000)} s` });
    }
  }
}

const STAGING_BOUND_MS = REQUEST_TIMEOUT_MS + 60_000 + REQUEST_TIMEOUT_MS + 5_000;

/** After the last round: wait until every staged file is past the sweeper's bound (at most that long), so checkStaging judges them all. */
export async function waitOutStagingGrace(cluster: Cluster): Promise<void> {
  const staging = path.join(cluster.dataDir, 'blobs', 'staging');
  const names = await readdir(staging).catch(() => [] as string[]);
  const times = await Promise.all(names.map((name) => stat(path.join(staging, name)).then((entry) => entry.mtimeMs, () => 0)));
  const youngest = Math.max(0, ...times);
  const wait = youngest + STAGING_BOUND_MS + 1_000 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(wait, STAGING_BOUND_MS + 1_000)));
}

/** How many staged uploads are in progress right now (for the partial upload before a kill). */
export async function stagingFiles(cluster: Cluster): Promise<string[]> {
  return readdir(path.join(cluster.dataDir, 'blobs', 'staging')).catch(() => []);
}
