/**
 * File bytes across projects: project B deletes a file while project A uploads the same bytes.
 * With content-addressed blobs that race lost A's bytes (B's delete removed the blob A's upload
 * had just found present). Each file now owns its bytes, so the race is run thousands of times on
 * both databases and A's content must come back identical every time. A file whose bytes are
 * gone anyway (a disk accident) answers a clear 5xx on /content and fails its ingestion at once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { until } from './helpers/wait.ts';

const ITERATIONS = 2_000;
/** Iterations in flight at once: enough to interleave the requests, few enough for a loaded 2-core machine. */
const LANES = 16;

async function upload(cairn: TestCairn, key: string, bytes: Buffer, filename = 'race.bin'): Promise<string> {
  const form = new FormData();
  form.append('purpose', 'assistants');
  form.append('file', new Blob([new Uint8Array(bytes)]), filename);
  const response = await fetch(`${cairn.baseURL}/files`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { id: string }).id;
}

async function remove(cairn: TestCairn, key: string, id: string): Promise<void> {
  const response = await fetch(`${cairn.baseURL}/files/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } });
  assert.equal(response.status, 200, await response.clone().text());
}

/** The download; a connection closed without an answer (what a lost blob did) is status 0. */
async function content(cairn: TestCairn, key: string, id: string): Promise<{ status: number; body: Buffer }> {
  try {
    const response = await fetch(`${cairn.baseURL}/files/${id}/content`, { headers: { authorization: `Bearer ${key}` } });
    return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
  } catch (error) {
    return { status: 0, body: Buffer.from(String(error)) };
  }
}

/** Runs the race ITERATIONS times, LANES at a time; returns the iterations where A's bytes were not intact. */
async function runRace(cairn: TestCairn, keyA: string, keyB: string): Promise<string[]> {
  const losses: string[] = [];
  let next = 0;
  const lane = async () => {
    while (next < ITERATIONS) {
      const iteration = next++;
      const bytes = randomBytes(1_000);
      const fileB = await upload(cairn, keyB, bytes);
      const [, fileA] = await Promise.all([remove(cairn, keyB, fileB), upload(cairn, keyA, bytes)]);
      const got = await content(cairn, keyA, fileA);
      if (got.status !== 200 || !got.body.equals(bytes)) losses.push(`iteration ${iteration}: status ${got.status}, ${got.body.length} bytes`);
      await remove(cairn, keyA, fileA);
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
  return losses;
}

async function blobFiles(dataDir: string): Promise<string[]> {
  const entries = await readdir(path.join(dataDir, 'blobs'), { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(path.join(dataDir, 'blobs'), path.join(entry.parentPath, entry.name)))
    .filter((file) => !file.startsWith('staging'));
}

for (const database of ['postgres', 'pglite'] as const) {
  describe(`file bytes across projects (${database})`, () => {
    let cairn: TestCairn;
    let keyA: string;
    let keyB: string;

    before(async () => {
      cairn = await startCairn({ pglite: database === 'pglite', env: { CAIRN_INGEST_ATTEMPTS: '8', CAIRN_INGEST_BACKOFF_MS: '60000' } });
      keyA = cairn.key;
      keyB = await cairn.newKey('project-b');
    });
    after(() => cairn?.stop());

    it(`keeps A's bytes when B deletes the same bytes while A uploads them (${ITERATIONS} races)`, async () => {
      assert.deepEqual(await runRace(cairn, keyA, keyB), []);
      // Every file was deleted at the end of its iteration: no bytes stay behind either.
      assert.deepEqual(await blobFiles(cairn.services.config.dataDir), []);
    });

    it('answers a 500 envelope on /content and fails the ingestion at once when a file lost its bytes', async () => {
      const id = await upload(cairn, keyA, Buffer.from('The ferry to Inishmore leaves at nine.'), 'ferry.txt');
      for (const blob of await blobFiles(cairn.services.config.dataDir)) await rm(path.join(cairn.services.config.dataDir, 'blobs', blob));

      const { status, body } = await content(cairn, keyA, id);
      assert.equal(status, 500);
      const { error } = JSON.parse(body.toString()) as { error: { type: string; code: string; message: string } };
      assert.equal(error.type, 'server_error');
      assert.equal(error.code, 'file_content_missing');
      assert.match(error.message, new RegExp(`bytes of file ${id} are missing`));

      // The metadata is still there: the file is not "not found", its bytes are.
      assert.equal((await cairn.client().files.retrieve(id)).bytes, 38);

      const client = cairn.client();
      const kb = await client.vectorStores.create({ name: 'lost bytes', ...({ embedding_model: 'none' } as object) });
      await client.vectorStores.files.create(kb.id, { file_id: id });
      // With a 60 s backoff, a retried failure could not reach `failed` before the deadline: failing means failing at once.
      await until('the file to fail', async () => (await client.vectorStores.files.retrieve(id, { vector_store_id: kb.id })).status === 'failed', 20_000);
      const failed = await client.vectorStores.files.retrieve(id, { vector_store_id: kb.id });
      assert.equal(failed.last_error?.code, 'server_error');
      assert.match(failed.last_error?.message ?? '', /bytes of this file are missing/);
    });
  });
}
