/**
 * Redis going away in server mode, for real: a private redis-server without persistence is killed
 * and started again on the same port, so everything it held is lost. Uploads and attachments
 * are still accepted meanwhile (the database records them `in_progress`), no accepted job is lost,
 * and the worker that lived through the outage ingests everything once Redis is back, without
 * restarting the API.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import OpenAI, { toFile } from 'openai';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { freePort, until } from './helpers/wait.ts';

const MAIN = path.resolve(import.meta.dirname, '../src/main.ts');

/** A redis-server of this test's own, in memory only: killing it loses every job it held. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await until('redis-server to accept connections', () =>
    new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(true)).once('error', () => resolve(false));
      socket.once('close', () => socket.destroy());
      socket.setTimeout(500, () => socket.destroy());
    }).then((ok) => ok && child.exitCode === null),
  10_000);
  return child;
}

async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

describe('Redis down (server mode)', () => {
  const queueName = `cairn-fault-${process.pid}-${Date.now()}`;
  let redisPort: number;
  let redis: ChildProcess;
  let worker: ChildProcess;
  let cairn: TestCairn;
  let client: OpenAI;

  before(async () => {
    redisPort = await freePort();
    redis = await startRedis(redisPort);
    cairn = await startCairn({
      env: {
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        CAIRN_QUEUE_NAME: queueName,
        CAIRN_INGEST_CONCURRENCY: '1',
        CAIRN_INGEST_BACKOFF_MS: '100',
      },
    });
    client = cairn.client();
    const { config } = cairn.services;
    // The worker shares the API's blob directory, as they share a volume in docker compose.
    const workerEnv = {
      REDIS_URL: config.redisUrl!, QDRANT_URL: config.qdrantUrl!, DATABASE_URL: config.databaseUrl!, CAIRN_DATA_DIR: config.dataDir,
      CAIRN_QUEUE_NAME: queueName, CAIRN_WORKER_LOCK_MS: '1000', CAIRN_INGEST_CONCURRENCY: '1', CAIRN_EMBEDDING_MODEL: 'none', CAIRN_LOG_LEVEL: 'warn',
    };
    worker = spawn(process.execPath, ['--import', 'tsx', MAIN, 'worker'], { env: { ...process.env, ...workerEnv }, stdio: ['ignore', 'ignore', 'inherit'] });
  });

  after(async () => {
    if (worker.signalCode === null) worker.kill('SIGCONT');
    await stop(worker);
    await cairn.stop();
    await stop(redis);
  });

  const upload = async (name: string, text: string) =>
    (await client.files.create({ file: await toFile(Buffer.from(text), name), purpose: 'assistants' })).id;

  async function waitingJobs(): Promise<number> {
    const queue = new Queue(queueName, { connection: { host: '127.0.0.1', port: redisPort, maxRetriesPerRequest: 1 } });
    try {
      return (await queue.getWaitingCount()) + (await queue.getPrioritizedCount());
    } finally {
      await queue.close();
    }
  }

  it('accepts attachments while Redis is down and ingests them, and the jobs Redis lost, when it returns', async () => {
    const kb = await client.vectorStores.create({ name: 'outage' });
    const warmUp = await upload('warm-up.txt', 'The worker is up and ingesting.');
    await client.vectorStores.files.create(kb.id, { file_id: warmUp });
    await until('the worker to ingest a file', async () => (await client.vectorStores.files.retrieve(warmUp, { vector_store_id: kb.id })).status === 'completed', 60_000);

    // A job accepted before the outage and still waiting in Redis when Redis dies: the worker is paused.
    worker.kill('SIGSTOP');
    const before = await upload('before.txt', 'Parcels ship from Rotterdam every Tuesday.');
    await client.vectorStores.files.create(kb.id, { file_id: before });
    assert.equal(await waitingJobs(), 1, 'the job was in Redis');
    await stop(redis);
    worker.kill('SIGCONT');

    // During the outage: uploads and attachments are accepted, /readyz names the queue.
    const during = await upload('during.txt', 'Refunds are issued within 30 days.');
    const attached = await client.vectorStores.files.create(kb.id, { file_id: during });
    assert.equal(attached.status, 'in_progress');
    const batchFile = await upload('batch.txt', 'Returns need the original receipt.');
    const batch = await client.vectorStores.fileBatches.create(kb.id, { file_ids: [batchFile] });
    assert.equal(batch.status, 'in_progress');
    const ready = await fetch(`${cairn.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal(((await ready.json()) as { checks: Record<string, string> }).checks.queue, 'failing');
    assert.match(cairn.logs.text(), /Redis is unavailable: ingestion will be queued when it is back/);

    // Redis returns empty, on the same port; neither the API nor the worker is restarted.
    redis = await startRedis(redisPort);
    for (const fileId of [before, during, batchFile]) {
      await until(`${fileId} to be ingested`, async () => (await client.vectorStores.files.retrieve(fileId, { vector_store_id: kb.id })).status === 'completed');
    }
    assert.equal(worker.exitCode, null, 'the same worker resumed');
    assert.equal((await fetch(`${cairn.url}/readyz`)).status, 200);
    const results = await client.vectorStores.search(kb.id, { query: 'refunds within 30 days' });
    assert.ok(results.data.some((result) => result.file_id === during));
  });
});

describe('Redis down when the API starts (server mode)', () => {
  it('accepts an attachment at once and queues it when Redis first comes up', async () => {
    const port = await freePort();
    const queueName = `cairn-late-${process.pid}-${Date.now()}`;
    const cairn = await startCairn({ env: { REDIS_URL: `redis://127.0.0.1:${port}`, CAIRN_QUEUE_NAME: queueName } });
    let redis: ChildProcess | undefined;
    try {
      const client = cairn.client({ timeout: 5_000 });
      const kb = await client.vectorStores.create({ name: 'late-redis' });
      const file = await client.files.create({ file: await toFile(Buffer.from('Queued after all.'), 'late.txt'), purpose: 'assistants' });
      const started = Date.now();
      const attached = await client.vectorStores.files.create(kb.id, { file_id: file.id });
      assert.equal(attached.status, 'in_progress');
      assert.ok(Date.now() - started < 4_000, 'the attach did not wait for Redis');

      redis = await startRedis(port);
      const queue = new Queue(queueName, { connection: { host: '127.0.0.1', port, maxRetriesPerRequest: 1 } });
      try {
        await until('the job to reach Redis', async () => (await queue.getWaitingCount()) === 1);
      } finally {
        await queue.close();
      }
    } finally {
      await cairn.stop();
      if (redis) await stop(redis);
    }
  });
});
