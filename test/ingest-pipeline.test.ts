/**
 * The ingestion pipeline's ownership rules, run against real Postgres, Qdrant and Redis: a run that
 * loses its job lock writes nothing more (no upsert, no publish, no status), and a run redoing the
 * same generation resumes after the last batch an earlier run saved.
 *
 * The API runs in server mode with no worker, so attaching only queues a job in Redis and the test
 * drives the pipeline's handler itself, with a lock it controls.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import OpenAI, { toFile } from 'openai';
import type { JobContext } from '../src/queue/ingest-queue.ts';
import { KbFileStore } from '../src/store/kb-files.ts';
import type { ChunkPoint } from '../src/vectors/qdrant-chunk-store.ts';
import { longText } from './helpers/documents.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const BATCH = 4;

describe('ingestion pipeline: job lock and checkpoint', () => {
  const queueName = `cairn-pipeline-${process.pid}-${Date.now()}`;
  let cairn: TestCairn;
  let client: OpenAI;
  let projectId: string;
  /** What the pipeline wrote, in order: upserted chunk indexes, publishes. */
  let writes: string[] = [];

  before(async () => {
    cairn = await startCairn({ env: { REDIS_URL, CAIRN_QUEUE_NAME: queueName, CAIRN_INGEST_BATCH_SIZE: String(BATCH) } });
    client = cairn.client();
    projectId = (await cairn.services.keys.authenticate(cairn.key))!.projectId;
    // Record the pipeline's Qdrant writes (the calls still reach Qdrant).
    const store = cairn.services.chunkStore;
    const upsert = store.upsert.bind(store);
    const markReady = store.markReady.bind(store);
    store.upsert = async (collection: string, points: ChunkPoint[]) => {
      writes.push(...points.map((point) => `upsert ${point.payload.chunk_index}`));
      return upsert(collection, points);
    };
    store.markReady = async (...args: Parameters<typeof markReady>) => {
      writes.push('publish');
      return markReady(...args);
    };
  });

  after(async () => {
    await cairn.stop();
    const queue = new Queue(queueName, { connection: { host: '127.0.0.1', port: 6379 } });
    await queue.obliterate({ force: true });
    await queue.close();
  });

  const kbFiles = () => new KbFileStore(cairn.services.db);

  /** A job context whose lock holds for the first `holds` checks and is lost from then on. */
  function lockFor(holds: number): JobContext & { checks: number } {
    const context = {
      signal: new AbortController().signal,
      attempt: 1,
      isFinalAttempt: true,
      checks: 0,
      holdsLock: async () => ++context.checks <= holds,
    };
    return context;
  }

  it('stops writing once the lock is lost, and a later run resumes where the saved progress says', async () => {
    const kb = await client.vectorStores.create({ name: 'lock-loss', ...({ embedding_model: 'none' } as object) });
    const file = await client.files.create({ file: await toFile(Buffer.from(longText(120)), 'keeper.txt'), purpose: 'assistants' });
    await client.vectorStores.files.create(kb.id, { file_id: file.id });
    const row = (await kbFiles().get(projectId, kb.id, file.id))!;
    const job = { kbFileId: row.id, generation: row.generation };

    // The lock holds for three batches; the fourth check finds it lost.
    writes = [];
    const stale = lockFor(3);
    await cairn.services.pipeline.handle(job, stale);
    assert.equal(stale.checks, 4, 'the run stopped at the first failed check');
    assert.deepEqual(writes, Array.from({ length: 3 * BATCH }, (_, i) => `upsert ${i}`), 'three batches, then nothing: no upsert, no publish');
    const afterLoss = (await kbFiles().byId(row.id))!;
    assert.equal(afterLoss.status, 'in_progress', 'the stale run did not complete or fail the file');
    assert.equal(await cairn.services.chunkStore.count('cairn_lexical', { projectId, kbId: kb.id, fileId: file.id }), 3 * BATCH);
    assert.equal((await client.vectorStores.search(kb.id, { query: 'lighthouse keeper' })).data.length, 0, 'nothing published');
    assert.match(cairn.logs.text(), /ingestion lost its job lock: stopped without further writes/);

    // A new run of the same generation starts after the twelve stored chunks, not at 0.
    writes = [];
    await cairn.services.pipeline.handle(job, lockFor(Infinity));
    assert.equal(writes[0], `upsert ${3 * BATCH}`, 'resumed after the checkpoint');
    assert.equal(writes.at(-1), 'publish');
    const done = await client.vectorStores.files.retrieve(file.id, { vector_store_id: kb.id });
    assert.equal(done.status, 'completed');
    const chunkCount = (done as unknown as { chunk_count: number }).chunk_count;
    assert.ok(chunkCount > 4 * BATCH, `enough chunks for the test (${chunkCount})`);
    assert.equal(writes.length, chunkCount - 3 * BATCH + 1, 'every other chunk written once, then one publish');
    assert.equal(await cairn.services.chunkStore.count('cairn_lexical', { projectId, kbId: kb.id, fileId: file.id }), chunkCount);
    assert.match(cairn.logs.text(), /resuming ingestion after the chunks an earlier run stored/);
  });

  it('starts from 0 when the checkpointed chunk is not stored', async () => {
    const kb = await client.vectorStores.create({ name: 'lost-points', ...({ embedding_model: 'none' } as object) });
    const file = await client.files.create({ file: await toFile(Buffer.from(longText(60)), 'tide.txt'), purpose: 'assistants' });
    await client.vectorStores.files.create(kb.id, { file_id: file.id });
    const row = (await kbFiles().get(projectId, kb.id, file.id))!;
    const job = { kbFileId: row.id, generation: row.generation };
    await cairn.services.pipeline.handle(job, lockFor(2));
    // The saved progress claims two batches, but Qdrant lost them (restored from an older snapshot, say).
    await cairn.services.chunkStore.deleteFile('cairn_lexical', { projectId, kbId: kb.id, fileId: file.id });

    writes = [];
    await cairn.services.pipeline.handle(job, lockFor(Infinity));
    assert.equal(writes[0], 'upsert 0');
    const done = await client.vectorStores.files.retrieve(file.id, { vector_store_id: kb.id });
    assert.equal(done.status, 'completed');
    assert.equal(await cairn.services.chunkStore.count('cairn_lexical', { projectId, kbId: kb.id, fileId: file.id }), (done as unknown as { chunk_count: number }).chunk_count);
  });

  it('does not mark a file failed from a run that lost its lock', async () => {
    const kb = await client.vectorStores.create({ name: 'no-stale-fail', ...({ embedding_model: 'none' } as object) });
    const file = await client.files.create({ file: await toFile(Buffer.from(''), 'empty.txt'), purpose: 'assistants' });
    await client.vectorStores.files.create(kb.id, { file_id: file.id });
    const row = (await kbFiles().get(projectId, kb.id, file.id))!;
    // An empty file fails with invalid_file, but only the lock holder may record that.
    await cairn.services.pipeline.handle({ kbFileId: row.id, generation: row.generation }, lockFor(0));
    assert.equal((await kbFiles().byId(row.id))!.status, 'in_progress');
    await cairn.services.pipeline.handle({ kbFileId: row.id, generation: row.generation }, lockFor(Infinity));
    assert.equal((await kbFiles().byId(row.id))!.status, 'failed');
  });
});
