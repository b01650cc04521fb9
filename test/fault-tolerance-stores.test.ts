/**
 * Storage faults injected for real on one running Cairn: Qdrant stopped and restarted on the same
 * storage, and PostgreSQL "restarted" (its backends terminated and the port refused for a while)
 * through a TCP proxy, so the machine's shared Postgres is never touched. Redis is in
 * test/fault-tolerance-queue.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import pg from 'pg';
import { createTestDatabase, startCairn, stubModel, type TestCairn, type TestDatabase } from './helpers/harness.ts';
import { startOwnQdrant } from './helpers/qdrant.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';
import { TcpProxy } from './helpers/tcp-proxy.ts';
import { until } from './helpers/wait.ts';

const HANDBOOK = 'Parcels ship from Rotterdam every Tuesday and arrive within five working days.';
const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

interface Envelope {
  error: { message: string; type: string; code: string | null };
}

async function call(cairn: TestCairn, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const response = await fetch(`${cairn.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${cairn.key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: await response.json() };
}

const portOf = (url: string): number => Number(new URL(url).port);

describe('Qdrant down', () => {
  let qdrant: Awaited<ReturnType<typeof startOwnQdrant>>;
  let proxy: TcpProxy;
  let upstream: StubUpstream;
  let cairn: TestCairn;
  let client: OpenAI;
  let kbId: string;

  before(async () => {
    qdrant = await startOwnQdrant();
    proxy = await TcpProxy.start(portOf(qdrant.url));
    upstream = await StubUpstream.start({ name: 'llm' });
    cairn = await startCairn({
      modelConfig: { models: [stubModel('llama', [upstream.url])] },
      // 300+600+1200+2400+4800 ms between six attempts: a retry window of about 9 s.
      env: { QDRANT_URL: `http://127.0.0.1:${proxy.port}`, CAIRN_INGEST_ATTEMPTS: '6', CAIRN_INGEST_BACKOFF_MS: '300' },
    });
    client = cairn.client();
    const kb = await client.vectorStores.create({ name: 'handbook' });
    kbId = kb.id;
    const file = await client.files.create({ file: await toFile(Buffer.from(HANDBOOK), 'handbook.txt'), purpose: 'assistants' });
    await client.vectorStores.files.create(kbId, { file_id: file.id });
    await until('the file to be ingested', async () => (await client.vectorStores.files.retrieve(file.id, { vector_store_id: kbId })).status === 'completed', 20_000);
  });

  after(async () => {
    await cairn.stop();
    await proxy.close();
    await qdrant.stop();
    await upstream.close();
  });

  it('answers 503 naming the vector store for search and grounded chat, keeps plain chat, and fails /readyz', async () => {
    await qdrant.stop();
    await proxy.cut();

    const search = await call(cairn, 'POST', `/v1/vector_stores/${kbId}/search`, { query: 'when do parcels ship' });
    assert.equal(search.status, 503);
    assert.equal((search.body as Envelope).error.code, 'service_unavailable');
    assert.match((search.body as Envelope).error.message, /vector store \(Qdrant\) is unavailable/);

    const grounded = await call(cairn, 'POST', '/v1/chat/completions', {
      model: 'llama', messages: [{ role: 'user', content: 'when do parcels ship?' }], knowledge_bases: [kbId],
    });
    assert.equal(grounded.status, 503);
    assert.match((grounded.body as Envelope).error.message, /vector store/);
    assert.equal(upstream.requests.length, 0, 'nothing was sent to the model without its sources');

    const plain = await client.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(plain.choices[0]!.message.content, 'This is the stub answer from llm.');

    const ready = await fetch(`${cairn.url}/readyz`);
    assert.equal(ready.status, 503);
    const readiness = (await ready.json()) as { checks: Record<string, string> };
    assert.equal(readiness.checks.vector_store, 'failing');
    assert.equal(readiness.checks.database, 'ok');
  });

  it('retries ingestion through the outage and completes it when Qdrant returns', async () => {
    const file = await client.files.create({ file: await toFile(Buffer.from('Refunds are issued within 30 days.'), 'refunds.txt'), purpose: 'assistants' });
    const attached = await client.vectorStores.files.create(kbId, { file_id: file.id });
    assert.equal(attached.status, 'in_progress', 'attaching needs no vector store');
    await until('a failed ingestion attempt', () => /ingestion attempt failed/.test(cairn.logs.text()), 20_000);
    assert.equal((await client.vectorStores.files.retrieve(file.id, { vector_store_id: kbId })).status, 'in_progress');

    // The same storage on a new port, behind the same address.
    qdrant = await startOwnQdrant(qdrant.storageDir);
    proxy.retarget(portOf(qdrant.url));
    await proxy.restore();

    await until('the file to be ingested', async () => (await client.vectorStores.files.retrieve(file.id, { vector_store_id: kbId })).status === 'completed', 20_000);
    const results = await client.vectorStores.search(kbId, { query: 'refunds within 30 days' });
    assert.ok(results.data.some((result) => result.file_id === file.id));
    assert.ok(results.data.some((result) => /Rotterdam/.test(result.content[0]!.text)), 'points written before the outage survived');
    assert.equal((await fetch(`${cairn.url}/readyz`)).status, 200);
  });
});

describe('PostgreSQL restart', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let cairn: TestCairn;

  before(async () => {
    database = await createTestDatabase();
    proxy = await TcpProxy.start(portOf(database.url) || 5432);
    const proxied = new URL(database.url);
    proxied.port = String(proxy.port);
    // No key cache, so authentication itself needs the database.
    cairn = await startCairn({ env: { DATABASE_URL: proxied.toString(), CAIRN_AUTH_CACHE_TTL_MS: '0' } });
  });

  after(async () => {
    await cairn.stop();
    await proxy.close();
    await database.drop();
  });

  /** What a restart does to clients: every backend terminated, then the port refused. */
  async function restartBegins(): Promise<void> {
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    const name = new URL(database.url).pathname.slice(1);
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
    await admin.end();
    await proxy.cut();
  }

  it('answers 503 during the outage and recovers on the same instance', async () => {
    assert.equal((await call(cairn, 'GET', '/v1/files')).status, 200);
    await restartBegins();

    for (const [method, path, body] of [
      ['GET', '/v1/files', undefined],
      ['POST', '/v1/vector_stores', { name: 'during-outage' }],
      ['GET', '/v1/vector_stores', undefined],
    ] as const) {
      const response = await call(cairn, method, path, body);
      assert.equal(response.status, 503, `${method} ${path}`);
      assert.equal((response.body as Envelope).error.code, 'service_unavailable');
      assert.match((response.body as Envelope).error.message, /database/i);
      assert.doesNotMatch((response.body as Envelope).error.message, /127\.0\.0\.1|ECONNREFUSED/, 'no internal details');
    }
    const ready = await fetch(`${cairn.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal(((await ready.json()) as { checks: Record<string, string> }).checks.database, 'failing');
    assert.equal((await fetch(`${cairn.url}/healthz`)).status, 200, 'the process itself is alive');

    await proxy.restore();
    const files = await call(cairn, 'GET', '/v1/files');
    assert.equal(files.status, 200, 'the first request after the restart succeeds');
    const created = await call(cairn, 'POST', '/v1/vector_stores', { name: 'after-restart' });
    assert.equal(created.status, 200);
    assert.equal((await fetch(`${cairn.url}/readyz`)).status, 200);
    assert.doesNotMatch(cairn.logs.text(), /unhandled error/, 'every failure was a typed one');
  });
});
