/**
 * The blob store and the files it serves: per-file keys, files stored before them under a shared
 * content-addressed key (migration 005 keeps them readable and deletes their bytes only with the
 * last file), key checking, and the sweep of uploads a killed process left in staging.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { FileService } from '../src/knowledge/file-service.ts';
import type { KnowledgeBaseService } from '../src/knowledge/knowledge-base-service.ts';
import { ApiKeyStore } from '../src/store/api-keys.ts';
import { BlobMissingError, legacyBlobKey, LocalBlobStore } from '../src/store/blob-store.ts';
import { PgliteDatabase, PostgresDatabase, type Database } from '../src/store/database.ts';
import { FileStore } from '../src/store/files.ts';
import { migrate, readMigrations } from '../src/store/migrations.ts';
import { createTestDatabase, type TestDatabase } from './helpers/harness.ts';

/** Files in these tests are in no knowledge base. */
const noKnowledgeBases = { detachEverywhere: async () => undefined } as unknown as KnowledgeBaseService;

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name))).sort();
}

describe('LocalBlobStore', () => {
  let root: string;
  let blobs: LocalBlobStore;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'cairn-blobs-'));
    blobs = new LocalBlobStore(root);
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('gives every commit of the same bytes its own key, so deleting one leaves the other', async () => {
    const first = await blobs.commit(await blobs.stage(Readable.from([Buffer.from('same bytes')])));
    const second = await blobs.commit(await blobs.stage(Readable.from([Buffer.from('same bytes')])));
    assert.notEqual(first, second);
    assert.match(first, /^files\/[0-9a-f-]{36}$/);
    await blobs.delete(first);
    assert.equal((await blobs.read(second)).toString(), 'same bytes');
    await assert.rejects(blobs.read(first), BlobMissingError);
    await assert.rejects(blobs.open(first), BlobMissingError);
    await blobs.delete(second);
  });

  it('refuses keys that are not its own (no path of a caller\'s choosing)', async () => {
    for (const key of ['../../etc/passwd', 'files/../../x', 'sha256/abc', `files/${'a'.repeat(36)}/..`, '']) {
      await assert.rejects(blobs.read(key), /not a blob key/, key);
    }
  });

  it('sweeps staged uploads older than the cut-off and leaves younger ones (live uploads) alone', async () => {
    const staging = path.join(root, 'staging');
    await mkdir(staging, { recursive: true });
    const abandoned = path.join(staging, 'left-by-a-killed-process');
    const live = path.join(staging, 'still-uploading');
    await writeFile(abandoned, Buffer.alloc(1024));
    await writeFile(live, Buffer.alloc(1024));
    const anHourAgo = new Date(Date.now() - 3_600_000);
    await utimes(abandoned, anHourAgo, anHourAgo);

    assert.equal(await blobs.sweepStaging(60_000), 1);
    assert.deepEqual(await readdir(staging), ['still-uploading']);
    assert.equal(await new LocalBlobStore(path.join(root, 'never-used')).sweepStaging(0), 0);
  });
});

for (const kind of ['postgres', 'pglite'] as const) describe(`files stored before per-file blob keys (migration 005, ${kind})`, () => {
  let db: Database;
  let database: TestDatabase | undefined;
  let root: string;
  let blobs: LocalBlobStore;
  let service: FileService;
  let projectId: string;
  const sharedBytes = Buffer.from('bytes uploaded twice before migration 005');
  const OTHER_SHA256 = createHash('sha256').update('abc').digest('hex');

  /** Two files with the same bytes, stored the old way: one content-addressed blob, rows without blob keys. */
  async function storeLegacyPair(bytes = sharedBytes): Promise<[string, string]> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const dir = path.join(root, 'sha256', sha256.slice(0, 2), sha256.slice(2, 4));
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, sha256), bytes);
    const ids: [string, string] = [`file-legacy${Math.random().toString(36).slice(2)}`, `file-legacy${Math.random().toString(36).slice(2)}`];
    for (const id of ids) {
      await db.query(`INSERT INTO files (id, project_id, filename, purpose, bytes, sha256, blob_key) VALUES ($1, $2, 'old.txt', 'assistants', $3, $4, $5)`, [
        id, projectId, bytes.length, sha256, legacyBlobKey(sha256),
      ]);
    }
    return ids;
  }

  async function download(id: string): Promise<string> {
    const { stream } = await service.content(projectId, id);
    return Buffer.concat(await stream.toArray()).toString();
  }

  before(async () => {
    database = kind === 'postgres' ? await createTestDatabase() : undefined;
    db = database ? new PostgresDatabase(database.url, 4, () => undefined) : await PgliteDatabase.open(undefined);
    const migrations = readMigrations();
    const before005 = migrations.filter((migration) => migration.version < 5);
    await migrate(db, before005);
    projectId = (await new ApiKeyStore(db).ensureProject('legacy')).id;
    await db.query(`INSERT INTO files (id, project_id, filename, purpose, bytes, sha256) VALUES ('file-before005', $1, 'old.txt', 'assistants', 3, $2)`, [
      projectId, OTHER_SHA256,
    ]);
    await migrate(db, migrations);
    root = await mkdtemp(path.join(tmpdir(), 'cairn-legacy-blobs-'));
    blobs = new LocalBlobStore(root);
    service = new FileService(new FileStore(db), blobs, noKnowledgeBases);
  });
  after(async () => {
    await db.close();
    await database?.drop();
    await rm(root, { recursive: true, force: true });
  });

  it('gives rows stored before it their content-addressed key', async () => {
    const [row] = await db.query<{ blob_key: string }>(`SELECT blob_key FROM files WHERE id = 'file-before005'`);
    assert.equal(row?.blob_key, `sha256/${OTHER_SHA256}`);
  });

  it('keeps shared bytes readable until the last file naming them is deleted', async () => {
    const [first, second] = await storeLegacyPair();
    assert.equal(await download(first), sharedBytes.toString());
    await service.delete(projectId, first);
    assert.equal(await download(second), sharedBytes.toString());
    await service.delete(projectId, second);
    assert.deepEqual(await filesUnder(root), []);
  });

  it('removes shared bytes when both files are deleted at once (the row locks serialise the two decisions)', async () => {
    const pairs = await Promise.all(Array.from({ length: 20 }, (_, i) => storeLegacyPair(Buffer.from(`legacy bytes ${i}`))));
    await Promise.all(pairs.flat().map((id) => service.delete(projectId, id)));
    assert.deepEqual(await filesUnder(root), []);
  });

  it('stores new uploads of the same bytes under keys of their own', async () => {
    const file = await service.create(projectId, await blobs.stage(Readable.from([sharedBytes])), 'new.txt', 'assistants');
    assert.match(file.blobKey, /^files\//);
    assert.equal(await download(file.id), sharedBytes.toString());
    await service.delete(projectId, file.id);
    assert.deepEqual(await filesUnder(root), []);
  });
});
