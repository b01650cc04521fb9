/** The storage layer runs the same migrations and queries on PostgreSQL and on PGlite. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiKeyStore, hashKey } from '../src/store/api-keys.ts';
import { PgliteDatabase, PostgresDatabase, type Database } from '../src/store/database.ts';
import { migrate, readMigrations, splitStatements } from '../src/store/migrations.ts';
import { UsageStore } from '../src/store/usage.ts';
import { createTestDatabase, type TestDatabase } from './helpers/harness.ts';

const backends: Array<{ name: string; open(): Promise<{ db: Database; cleanup(): Promise<void> }> }> = [
  {
    name: 'PostgreSQL',
    async open() {
      const database: TestDatabase = await createTestDatabase();
      const db = new PostgresDatabase(database.url, 4, () => undefined);
      return { db, cleanup: async () => { await db.close(); await database.drop(); } };
    },
  },
  {
    name: 'PGlite',
    async open() {
      const db = await PgliteDatabase.open(undefined);
      return { db, cleanup: () => db.close() };
    },
  },
];

describe('migrations on a fresh PostgreSQL database', () => {
  it('lets several processes migrate at once: one applies each migration, none fails', async () => {
    // Each opener stands for a process (API replicas, a CLI) starting on the same new database.
    const database = await createTestDatabase();
    const dbs = Array.from({ length: 6 }, () => new PostgresDatabase(database.url, 2, () => undefined));
    try {
      const results = await Promise.all(dbs.map((db) => migrate(db)));
      const all = readMigrations().map((migration) => migration.name);
      assert.deepEqual(results.flat().sort(), [...all].sort(), 'every migration applied exactly once in total');
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
      await database.drop();
    }
  });
});

for (const backend of backends) {
  describe(`storage on ${backend.name}`, () => {
    let db: Database;
    let cleanup: () => Promise<void>;

    before(async () => {
      ({ db, cleanup } = await backend.open());
    });
    after(() => cleanup());

    it('applies every migration once and records it', async () => {
      const all = readMigrations().map((migration) => migration.name);
      assert.deepEqual(await migrate(db), all);
      assert.deepEqual(await migrate(db), [], 'a second run applies nothing');
      const recorded = await db.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY version');
      assert.deepEqual(recorded.map((row) => row.name), all);
    });

    it('rolls back a failing transaction', async () => {
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query("INSERT INTO projects (id, name) VALUES ('proj_tx', 'tx-project')");
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal((await db.query("SELECT 1 FROM projects WHERE id = 'proj_tx'")).length, 0);
    });

    it('creates keys stored only as hashes, authenticates and revokes them', async () => {
      const keys = new ApiKeyStore(db);
      const { key, info } = await keys.create('alpha', 'ci');
      assert.match(key, /^sk-cairn-[A-Za-z0-9_-]{32}$/);
      const stored = await db.query<Record<string, unknown>>('SELECT * FROM api_keys WHERE id = $1', [info.id]);
      assert.equal(stored[0]!.key_hash, hashKey(key));
      assert.ok(!JSON.stringify(stored).includes(key.slice(9)), 'the plain key is not stored');
      assert.equal(info.redacted, `${key.slice(0, 13)}…${key.slice(-4)}`);

      const caller = await keys.authenticate(key);
      assert.deepEqual(caller, { keyId: info.id, projectId: info.projectId, limits: {} });
      assert.equal(await keys.authenticate(`${key}x`), undefined);
      assert.equal(await keys.authenticate('not-a-cairn-key'), undefined);

      const second = await keys.create('alpha');
      assert.equal(second.info.projectId, info.projectId, 'same project name, same project');
      assert.deepEqual((await keys.list('alpha')).map((k) => k.id), [info.id, second.info.id]);

      assert.equal(await keys.revoke(info.id), true);
      assert.equal(await keys.revoke(info.id), false, 'already revoked');
      assert.equal(await keys.authenticate(key), undefined);
      assert.ok((await keys.list('alpha'))[0]!.revokedAt instanceof Date);
    });

    it('caches authentication but forgets a key revoked in this process at once', async () => {
      const keys = new ApiKeyStore(db, 60_000);
      const { key, info } = await keys.create('cached');
      assert.equal((await keys.authenticate(key))?.keyId, info.id);
      // Revoked by another process: this one keeps its cached answer until the TTL ends.
      await db.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [info.id]);
      assert.equal((await keys.authenticate(key))?.keyId, info.id);
      await keys.revoke(info.id);
      assert.equal(await keys.authenticate(key), undefined);
    });

    it('buffers usage records and reports them per project only', async () => {
      const keys = new ApiKeyStore(db);
      const a = await keys.create('usage-a');
      const b = await keys.create('usage-b');
      const usage = new UsageStore(db, (error) => assert.fail(error), 60_000);
      const record = (projectId: string, keyId: string, model: string, prompt: number) =>
        usage.record({ projectId, apiKeyId: keyId, requestId: 'req_1', endpoint: '/v1/chat/completions', model, promptTokens: prompt, completionTokens: 1, status: 200, latencyMs: 3 });
      record(a.info.projectId, a.info.id, 'm1', 10);
      record(a.info.projectId, a.info.id, 'm1', 5);
      record(a.info.projectId, a.info.id, 'm2', 1);
      record(b.info.projectId, b.info.id, 'm1', 100);
      assert.deepEqual(await usage.summary(a.info.projectId), [
        { model: 'm1', requests: 2, promptTokens: 15, completionTokens: 2 },
        { model: 'm2', requests: 1, promptTokens: 1, completionTokens: 1 },
      ]);
      assert.deepEqual(await usage.summary(b.info.projectId), [{ model: 'm1', requests: 1, promptTokens: 100, completionTokens: 1 }]);
      assert.deepEqual(await usage.summary(a.info.projectId, new Date(Date.now() + 60_000)), []);
      await usage.close();
    });
  });
}

describe('migration files', () => {
  it('split into statements without comments', () => {
    assert.deepEqual(splitStatements('-- note; with semicolon\nCREATE TABLE a (x int);\n\nCREATE INDEX i ON a (x);\n'), [
      'CREATE TABLE a (x int)',
      'CREATE INDEX i ON a (x)',
    ]);
  });
});
