/**
 * Server mode: the API enqueues on BullMQ (real Redis) and `cairn worker` processes ingest.
 * Includes the crash test: a worker killed with SIGKILL mid-job, the job retaken by another,
 * and Qdrant left with exactly the expected points; and the orphan tests: a job that left Redis
 * is found by a worker's reconciler, and a worker that lost its job lock stops writing.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import OpenAI, { toFile } from 'openai';
import { longText } from './helpers/documents.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { acquireTestQdrant, type QdrantLease } from './helpers/qdrant.ts';
import { KbFileStore } from '../src/store/kb-files.ts';
import { until } from './helpers/wait.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const MAIN = path.resolve(import.meta.dirname, '../src/main.ts');

describe('ingestion on BullMQ workers', () => {
  const queueName = `cairn-test-${process.pid}-${Date.now()}`;
  let qdrant: QdrantLease;
  let cairn: TestCairn;
  let client: OpenAI;
  let projectId: string;
  let workerEnv: Record<string, string>;
  const workers = new Set<ChildProcess>();
  /** Each worker's log (stdout), by process. */
  const output = new Map<ChildProcess, string>();

  function startWorker(env: Record<string, string> = {}): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'worker'], { env: { ...process.env, ...workerEnv, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    workers.add(child);
    output.set(child, '');
    child.stdout!.on('data', (data: Buffer) => output.set(child, output.get(child) + data.toString('utf8')));
    child.once('exit', () => workers.delete(child));
    return child;
  }

  /** Kills the workers earlier tests left running, so the next job goes to the worker the test starts. */
  async function killWorkers(): Promise<void> {
    await Promise.all([...workers].map(async (worker) => {
      const exited = once(worker, 'exit');
      worker.kill('SIGKILL');
      await exited;
    }));
  }

  /** The BullMQ job of a knowledge-base file: its id, and its lock key (what a live worker renews). */
  async function bullJobOf(kbId: string, fileId: string): Promise<{ id: string; lockKey: string }> {
    const row = (await new KbFileStore(cairn.services.db).get(projectId, kbId, fileId))!;
    const id = `${row.id}-${row.generation}`;
    return { id, lockKey: `bull:${queueName}:${id}:lock` };
  }

  async function withQueue<T>(use: (queue: Queue) => Promise<T>): Promise<T> {
    const queue = new Queue(queueName, { connection: { host: '127.0.0.1', port: 6379 } });
    try {
      return await use(queue);
    } finally {
      await queue.close();
    }
  }

  /** What a job that vanished looks like: its lock gone and the job removed from Redis. */
  const loseJob = (job: { id: string; lockKey: string }) =>
    withQueue(async (queue) => {
      await (await queue.client).del(job.lockKey);
      return queue.remove(job.id);
    });

  before(async () => {
    qdrant = await acquireTestQdrant();
    const env = {
      REDIS_URL,
      QDRANT_URL: qdrant.url,
      CAIRN_QUEUE_NAME: queueName,
      CAIRN_WORKER_LOCK_MS: '1000',
      CAIRN_INGEST_CONCURRENCY: '1',
      CAIRN_INGEST_BATCH_SIZE: '4',
      CAIRN_INGEST_BACKOFF_MS: '100',
    };
    cairn = await startCairn({ env });
    client = cairn.client();
    projectId = (await cairn.services.keys.authenticate(cairn.key))!.projectId;
    // Workers share the API's blob directory, as they share a volume in docker compose.
    workerEnv = { ...env, DATABASE_URL: cairn.services.config.databaseUrl!, CAIRN_DATA_DIR: cairn.services.config.dataDir, CAIRN_EMBEDDING_MODEL: 'none', CAIRN_LOG_LEVEL: 'warn' };
  });

  after(async () => {
    for (const worker of workers) worker.kill('SIGKILL');
    await cairn.stop();
    const queue = new Queue(queueName, { connection: { host: '127.0.0.1', port: 6379 } });
    await queue.obliterate({ force: true });
    await queue.close();
    await qdrant.release();
  });

  const points = (kbId: string, fileId?: string) => cairn.services.chunkStore.count('cairn_lexical', { projectId, kbId, fileId });

  it('runs the SDK flows on a worker process', async () => {
    const worker = startWorker();
    const kb = await client.vectorStores.create({ name: 'bull', ...({ embedding_model: 'none' } as object) });
    const file = await client.vectorStores.files.uploadAndPoll(kb.id, await toFile(Buffer.from('Owls hunt at night in silence.'), 'owls.txt'));
    assert.equal(file.status, 'completed', JSON.stringify(file.last_error));
    const batch = await client.vectorStores.fileBatches.uploadAndPoll(kb.id, {
      files: [await toFile(Buffer.from('Bees make honey.'), 'bees.txt'), await toFile(Buffer.from(''), 'empty.txt')],
    });
    assert.deepEqual(batch.file_counts, { in_progress: 0, completed: 1, failed: 1, cancelled: 0, total: 2 });
    const hits = await client.vectorStores.search(kb.id, { query: 'which animal hunts at night' });
    assert.equal(hits.data[0]!.filename, 'owls.txt');
    worker.kill('SIGTERM');
    await once(worker, 'exit');
  });

  it('finishes a job exactly once in effect after its worker is killed mid-job', async () => {
    const first = startWorker();
    const kb = await client.vectorStores.create({ name: 'crash', ...({ embedding_model: 'none' } as object) });
    const big = await client.files.create({ file: await toFile(Buffer.from(longText(300)), 'big.txt'), purpose: 'assistants' });
    await client.vectorStores.files.create(kb.id, { file_id: big.id });
    await until('the first worker to write some points', async () => (await points(kb.id, big.id)) > 0);
    first.kill('SIGKILL');
    await once(first, 'exit');
    const before = await client.vectorStores.files.retrieve(big.id, { vector_store_id: kb.id });
    assert.equal(before.status, 'in_progress', 'killed before it finished');

    startWorker();
    const done = await client.vectorStores.files.poll(kb.id, big.id, { pollIntervalMs: 100 });
    assert.equal(done.status, 'completed');
    const chunkCount = (done as unknown as { chunk_count: number }).chunk_count;
    assert.ok(chunkCount > 20);
    assert.equal(await points(kb.id, big.id), chunkCount, 'no duplicates, no orphans');
    assert.equal(await points(kb.id), chunkCount);
  });

  it('leaves zero points for a file deleted while a worker ingests it', async () => {
    const kb = await client.vectorStores.create({ name: 'delete-mid-job', ...({ embedding_model: 'none' } as object) });
    const big = await client.files.create({ file: await toFile(Buffer.from(longText(300)), 'big2.txt'), purpose: 'assistants' });
    await client.vectorStores.files.create(kb.id, { file_id: big.id });
    await until('the worker to write some points', async () => (await points(kb.id, big.id)) > 0);
    await client.vectorStores.files.delete(big.id, { vector_store_id: kb.id });
    const queue = new Queue(queueName, { connection: { host: '127.0.0.1', port: 6379 } });
    try {
      await until('the job to stop', async () => (await queue.getActiveCount()) + (await queue.getWaitingCount()) + (await queue.getDelayedCount()) === 0);
    } finally {
      await queue.close();
    }
    assert.equal(await points(kb.id, big.id), 0);
  });

  it('finishes a file whose worker was killed and whose job left Redis, with a new worker and no API restart', async () => {
    await killWorkers();
    // A long lock, so that only the test takes it away (chunking a large file blocks the worker's loop for a while).
    const first = startWorker({ CAIRN_WORKER_LOCK_MS: '10000' });
    const kb = await client.vectorStores.create({ name: 'orphan', ...({ embedding_model: 'none' } as object) });
    const big = await client.files.create({ file: await toFile(Buffer.from(longText(600)), 'orphan.txt'), purpose: 'assistants' });
    await client.vectorStores.files.create(kb.id, { file_id: big.id });
    const kbFiles = new KbFileStore(cairn.services.db);
    await until('the first worker to save some progress', async () => (await kbFiles.get(projectId, kb.id, big.id))!.progress > 0);
    first.kill('SIGKILL');
    await once(first, 'exit');
    const job = await bullJobOf(kb.id, big.id);
    assert.equal(await loseJob(job), 1, 'the job was removed from Redis');
    assert.equal(await withQueue((queue) => queue.getJobState(job.id)), 'unknown');
    assert.equal((await client.vectorStores.files.retrieve(big.id, { vector_store_id: kb.id })).status, 'in_progress');

    // A new worker (short reconcile interval and grace, for the test) finds the orphan by itself.
    const second = startWorker({ CAIRN_WORKER_LOCK_MS: '10000', CAIRN_RECONCILE_INTERVAL_MS: '200', CAIRN_RECONCILE_GRACE_MS: '1000', CAIRN_LOG_LEVEL: 'info' });
    await until('the orphaned file to complete', async () => (await client.vectorStores.files.retrieve(big.id, { vector_store_id: kb.id })).status !== 'in_progress', 120_000);
    const done = await client.vectorStores.files.retrieve(big.id, { vector_store_id: kb.id });
    assert.equal(done.status, 'completed');
    const chunkCount = (done as unknown as { chunk_count: number }).chunk_count;
    assert.equal(await points(kb.id, big.id), chunkCount, 'no duplicates, no orphans');
    const log = output.get(second)!;
    assert.match(log, /files in progress had no live ingestion job: re-enqueued/);
    assert.match(log, /resuming ingestion after the chunks an earlier run stored/, 'resumed, not restarted from 0 %');
  });

  it('stops writing in a worker whose job lock is lost, and leaves the file to the next run', async () => {
    await killWorkers();
    // The default reconcile grace (60 s): nothing re-enqueues the file while the test watches.
    const worker = startWorker({ CAIRN_WORKER_LOCK_MS: '10000' });
    const kb = await client.vectorStores.create({ name: 'lock-lost', ...({ embedding_model: 'none' } as object) });
    const big = await client.files.create({ file: await toFile(Buffer.from(longText(600)), 'lock-lost.txt'), purpose: 'assistants' });
    await client.vectorStores.files.create(kb.id, { file_id: big.id });
    await until('the worker to write some points', async () => (await points(kb.id, big.id)) > 0);

    // The lock lapses (as while a blocked event loop cannot renew it) and the job leaves Redis.
    assert.equal(await loseJob(await bullJobOf(kb.id, big.id)), 1, 'the job was removed from Redis');
    const atLoss = await points(kb.id, big.id);
    await until('the worker to notice the lost lock', () => /lost (its job lock|the lock of ingestion jobs)/.test(output.get(worker)!));
    // A graceful stop waits for the worker's jobs: whatever the stale run would still write happens before the exit.
    worker.kill('SIGTERM');
    await once(worker, 'exit');

    const after = await points(kb.id, big.id);
    assert.ok(after <= atLoss + 4, `at most the batch in flight when the lock went (${atLoss} → ${after})`);
    const file = await client.vectorStores.files.retrieve(big.id, { vector_store_id: kb.id });
    assert.equal(file.status, 'in_progress', 'the stale worker neither completed nor failed the file');
    assert.equal(file.last_error, null);
    assert.equal((await client.vectorStores.search(kb.id, { query: 'lighthouse keeper' })).data.length, 0, 'nothing was published');
  });
});
