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
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { until } from './helpers/wait.ts';

/**
 * The race at the file service, where it was decided: thousands of iterations in a test-sized time.
 * PGlite runs one statement at a time, so its iterations take longer and the race is rarer there.
 */
const SERVICE_ITERATIONS = { postgres: 2_000, pglite: 1_000 };
/** The same race over HTTP, as the issue ran it (multipart staging, express, the download route). */
const HTTP_ITERATIONS = 150;
/** Iterations in flight at once: enough to interleave the steps, few enough for a loaded 2-core machine. */
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

/** One side of the race: project-scoped upload, delete and download. */
interface Files {
  upload(project: 'a' | 'b', bytes: Buffer): Promise<string>;
  remove(project: 'a' | 'b', id: string): Promise<void>;
  /** The bytes A gets back, or a description of what went wrong instead. */
  download(project: 'a' | 'b', id: string): Promise<Buffer | string>;
}

function overHttp(cairn: TestCairn, keys: { a: string; b: string }): Files {
  return {
    upload: (project, bytes) => upload(cairn, keys[project], bytes),
    remove: (project, id) => remove(cairn, keys[project], id),
    download: async (project, id) => {
      const got = await content(cairn, keys[project], id);
      return got.status === 200 ? got.body : `status ${got.status}: ${got.body.toString().slice(0, 200)}`;
    },
  };
}

function throughService(cairn: TestCairn, projects: { a: string; b: string }): Files {
  const { files, blobs } = cairn.services;
  return {
    upload: async (project, bytes) => (await files.create(projects[project], await blobs.stage(Readable.from([bytes])), 'race.bin', 'assistants')).id,
    remove: async (project, id) => void (await files.delete(projects[project], id)),
    download: async (project, id) => {
      try {
        const { stream } = await files.content(projects[project], id);
        return Buffer.concat(await stream.toArray());
      } catch (error) {
        return String(error);
      }
    },
  };
}

/** Runs the issue's race `iterations` times, LANES at a time; returns the iterations where A's bytes were not intact. */
async function runRace(files: Files, iterations: number): Promise<string[]> {
  const losses: string[] = [];
  let next = 0;
  const lane = async () => {
    while (next < iterations) {
      const iteration = next++;
      const bytes = randomBytes(1_000);
      const fileB = await files.upload('b', bytes);
      const [, fileA] = await Promise.all([files.remove('b', fileB), files.upload('a', bytes)]);
      const got = await files.download('a', fileA);
      if (!(got instanceof Buffer) || !got.equals(bytes)) losses.push(`iteration ${iteration}: ${got instanceof Buffer ? `${got.length} other bytes` : got}`);
      await files.remove('a', fileA);
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

async function projectOf(cairn: TestCairn, key: string): Promise<string> {
  const caller = await cairn.services.keys.authenticate(key);
  assert.ok(caller);
  return caller.projectId;
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

    it(`keeps A's bytes when B deletes the same bytes while A uploads them (${SERVICE_ITERATIONS[database]} races in the file service)`, async () => {
      const projects = { a: await projectOf(cairn, keyA), b: await projectOf(cairn, keyB) };
      assert.deepEqual(await runRace(throughService(cairn, projects), SERVICE_ITERATIONS[database]), []);
      // Every file was deleted at the end of its iteration: no bytes stay behind either.
      assert.deepEqual(await blobFiles(cairn.services.config.dataDir), []);
    });

    it(`keeps A's bytes in the same race over HTTP (${HTTP_ITERATIONS} races)`, async () => {
      assert.deepEqual(await runRace(overHttp(cairn, { a: keyA, b: keyB }), HTTP_ITERATIONS), []);
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
