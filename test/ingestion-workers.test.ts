/**
 * Server mode: the API enqueues on BullMQ (real Redis) and `cairn worker` processes ingest.
 * Includes the crash test: a worker killed with SIGKILL mid-job, the job retaken by another,
 * and Qdrant left with exactly the expected points.
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

  function startWorker(): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'worker'], { env: { ...process.env, ...workerEnv }, stdio: ['ignore', 'ignore', 'inherit'] });
    workers.add(child);
    child.once('exit', () => workers.delete(child));
    return child;
  }

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
});
