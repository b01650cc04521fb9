/**
 * The reconciler against real Postgres and Redis: a file in progress whose job is alive (waiting in
 * BullMQ, or running in the embedded runner) is left alone; one whose job left the queue is
 * re-enqueued once, by exactly one of several reconcilers racing for it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import OpenAI, { toFile } from 'openai';
import { IngestReconciler } from '../src/knowledge/ingest-reconciler.ts';
import { InProcessIngestQueue } from '../src/queue/in-process-queue.ts';
import type { IngestJob, IngestQueue } from '../src/queue/ingest-queue.ts';
import { KbFileStore, type KbFile } from '../src/store/kb-files.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { until } from './helpers/wait.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const GRACE_MS = 60_000;

describe('ingest reconciler', () => {
  const queueName = `cairn-reconcile-${process.pid}-${Date.now()}`;
  let cairn: TestCairn;
  let client: OpenAI;
  let projectId: string;
  let bull: Queue;
  let kbFiles: KbFileStore;

  before(async () => {
    // Server mode with no worker: attached files wait in Redis, and nothing runs them.
    cairn = await startCairn({ env: { REDIS_URL, CAIRN_QUEUE_NAME: queueName } });
    client = cairn.client();
    projectId = (await cairn.services.keys.authenticate(cairn.key))!.projectId;
    bull = new Queue(queueName, { connection: { host: '127.0.0.1', port: 6379 } });
    kbFiles = new KbFileStore(cairn.services.db);
  });

  after(async () => {
    await cairn.stop();
    await bull.obliterate({ force: true });
    await bull.close();
  });

  const reconciler = (queue: IngestQueue = cairn.services.queue) =>
    new IngestReconciler(kbFiles, queue, cairn.services.logger, { intervalMs: 0, graceMs: GRACE_MS, maxRequeues: 2 });

  /** As if nothing had touched the row for an hour. */
  const age = (row: KbFile) => cairn.services.db.query("UPDATE knowledge_base_files SET updated_at = now() - interval '1 hour' WHERE id = $1", [row.id]);

  async function attachOne(name: string): Promise<KbFile> {
    const kb = await client.vectorStores.create({ name, ...({ embedding_model: 'none' } as object) });
    const file = await client.files.create({ file: await toFile(Buffer.from(`Text of ${name}.`), `${name}.txt`), purpose: 'assistants' });
    await client.vectorStores.files.create(kb.id, { file_id: file.id });
    return (await kbFiles.get(projectId, kb.id, file.id))!;
  }

  const bullJobId = (row: KbFile) => `${row.id}-${row.generation}`;

  it('leaves a file whose BullMQ job is waiting alone, and re-enqueues it once the job left Redis', async () => {
    const row = await attachOne('waiting');
    await age(row);
    assert.equal(await bull.getJobState(bullJobId(row)), 'waiting');
    assert.deepEqual(await reconciler().reconcile(), [], 'its job is alive');
    const untouched = (await cairn.services.db.query<{ old: boolean }>("SELECT updated_at < now() - interval '30 minutes' AS old FROM knowledge_base_files WHERE id = $1", [row.id]))[0]!;
    assert.equal(untouched.old, true, 'a file with a live job is not even claimed');

    await bull.remove(bullJobId(row));
    assert.equal(await bull.getJobState(bullJobId(row)), 'unknown');
    assert.deepEqual(await reconciler().reconcile(), [row.id]);
    assert.equal(await bull.getJobState(bullJobId(row)), 'waiting', 'queued again under the same job id');
    assert.deepEqual(await reconciler().reconcile(), [], 'claimed: not again within the grace period');
  });

  it('does not re-enqueue a file updated within the grace period', async () => {
    const row = await attachOne('fresh');
    await bull.remove(bullJobId(row));
    assert.deepEqual(await reconciler().reconcile(), []);
    assert.equal(await bull.getJobState(bullJobId(row)), 'unknown');
  });

  it('lets exactly one of several racing reconcilers re-enqueue an orphaned file', async () => {
    const row = await attachOne('race');
    await bull.remove(bullJobId(row));
    await age(row);
    const rounds = await Promise.all(Array.from({ length: 4 }, () => reconciler().reconcile()));
    assert.deepEqual(rounds.flat(), [row.id]);
    assert.equal(await bull.getJobState(bullJobId(row)), 'waiting');
  });

  it('fails a file that keeps losing its job without progress, and counts only requeues in a row', async () => {
    const row = await attachOne('poison');
    const orphan = async () => {
      await bull.remove(bullJobId(row));
      await age(row);
    };
    for (let round = 1; round <= 2; round += 1) {
      await orphan();
      assert.deepEqual(await reconciler().reconcile(), [row.id], `requeue ${round}`);
    }
    // Saved progress means the file is moving: the count starts again.
    await kbFiles.setProgress(row.id, row.generation, 0.5);
    for (let round = 1; round <= 2; round += 1) {
      await orphan();
      assert.deepEqual(await reconciler().reconcile(), [row.id], `requeue ${round} after progress`);
    }
    await orphan();
    assert.deepEqual(await reconciler().reconcile(), [], 'the third requeue in a row without progress is one too many');
    const failed = (await kbFiles.byId(row.id))!;
    assert.equal(failed.status, 'failed');
    assert.equal(failed.lastError?.code, 'server_error');
    assert.match(failed.lastError?.message ?? '', /interrupted 3 times in a row without progress/);
    assert.equal(await bull.getJobState(bullJobId(row)), 'unknown', 'not queued again');
  });

  it('leaves a file running in the embedded runner alone, so it does not run twice', async () => {
    const row = await attachOne('embedded');
    await bull.remove(bullJobId(row));
    await age(row);
    const runs: IngestJob[] = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const runner = new InProcessIngestQueue(async (job) => {
      runs.push(job);
      await released;
    }, cairn.services.logger, 1);
    await runner.enqueue([{ kbFileId: row.id, generation: row.generation }]);
    await until('the runner to start the job', () => runs.length === 1);

    assert.deepEqual(await reconciler(runner).reconcile(), [], 'its job is running');
    release();
    await runner.idle();
    assert.equal(runs.length, 1, 'ran once: the reconciler did not queue a rerun');

    // The runner is done but the row is still in progress (the handler here writes nothing): now it is orphaned.
    assert.deepEqual(await reconciler(runner).reconcile(), [row.id]);
    await runner.idle();
    assert.equal(runs.length, 2);
    await runner.close();
  });
});

describe('ingest reconciler, embedded (PGlite, in-process runner)', () => {
  it('finishes a file left in progress with no job, without a restart', async () => {
    const cairn = await startCairn({ pglite: true });
    try {
      const client = cairn.client();
      const kb = await client.vectorStores.create({ name: 'embedded-orphan', ...({ embedding_model: 'none' } as object) });
      const file = await client.vectorStores.files.uploadAndPoll(kb.id, await toFile(Buffer.from('Gulls follow the ferry.'), 'gulls.txt'));
      assert.equal(file.status, 'completed');
      // Back to in progress, with no job in the runner: what a job lost mid-run leaves behind.
      await cairn.services.db.query(
        "UPDATE knowledge_base_files SET status = 'in_progress', progress = 0, updated_at = now() - interval '1 hour' WHERE file_id = $1",
        [file.id],
      );
      const reconciled = await cairn.services.reconciler.reconcile();
      assert.equal(reconciled.length, 1);
      await until('the file to complete again', async () => (await client.vectorStores.files.retrieve(file.id, { vector_store_id: kb.id })).status === 'completed');
      const hits = await client.vectorStores.search(kb.id, { query: 'gulls ferry' });
      assert.equal(hits.data[0]?.file_id, file.id);
    } finally {
      await cairn.stop();
    }
  });
});
