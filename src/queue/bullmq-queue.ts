/**
 * Server mode's queue: BullMQ on Redis. The API process only enqueues; `cairn worker` processes
 * run the jobs. Job id = knowledge-base-file id + generation, so enqueuing a file twice collapses
 * into one job. A worker that dies mid-job loses its lock; BullMQ's stalled-job check hands the job
 * to another. A job that leaves Redis altogether (stalled too often, a Redis restart) is found by
 * the IngestReconciler, which re-enqueues files `in_progress` that have no live job.
 *
 * The database, not Redis, is the record of what must be ingested (rows `in_progress`). While
 * Redis is away, enqueuing is skipped rather than failed; when the connection comes back the
 * `onReconnect` listener re-enqueues every row in progress, which also restores jobs that a Redis
 * restart without persistence lost.
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ServiceUnavailableError } from '../errors.ts';
import { DEFAULT_RETRY, type IngestHandler, type IngestJob, type IngestQueue, type RetryPolicy } from './ingest-queue.ts';

/** How long an enqueue waits for the very first connection before it leaves the job to onReconnect. */
const FIRST_CONNECTION_WAIT_MS = 2_000;

const jobId = (job: IngestJob): string => `${job.kbFileId}-${job.generation}`;

/**
 * Workers need maxRetriesPerRequest: null so their blocking commands survive reconnects. The API's
 * producer connection instead fails fast while Redis is away, so requests get a 503, not a hang.
 */
function connect(url: string, role: 'producer' | 'worker'): Redis {
  return role === 'worker'
    ? new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true })
    : new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, enableReadyCheck: true });
}

function unavailable(error: unknown): ServiceUnavailableError {
  return new ServiceUnavailableError(`The job queue (Redis) is unavailable: ${(error as Error).message}`, { cause: error });
}

export class BullIngestQueue implements IngestQueue {
  private readonly connection: Redis;
  private readonly queue: Queue<IngestJob>;
  /** An enqueue was skipped while disconnected (at start, the connection may not be ready yet either). */
  private skipped = false;
  private everReady = false;

  constructor(
    redisUrl: string,
    queueName: string,
    private readonly retry: RetryPolicy = DEFAULT_RETRY,
    private readonly logger?: Logger,
  ) {
    this.connection = connect(redisUrl, 'producer');
    this.connection.once('ready', () => (this.everReady = true));
    this.queue = new Queue<IngestJob>(queueName, { connection: this.connection });
    // Connection errors surface through the calls below; without a listener they would be unhandled.
    this.queue.on('error', () => undefined);
  }

  async enqueue(jobs: IngestJob[]): Promise<void> {
    if (jobs.length === 0) return;
    // Not connected (yet): BullMQ would wait for the connection indefinitely. The rows are saved
    // `in_progress`, and onReconnect re-enqueues them once Redis is ready.
    if (!(await this.connected())) return this.skip(jobs.length, `connection ${this.connection.status}`);
    await this.queue.addBulk(
      jobs.map((job) => ({
        name: 'ingest',
        data: job,
        opts: {
          jobId: jobId(job),
          attempts: this.retry.attempts,
          backoff: { type: 'exponential', delay: this.retry.backoffMs },
          // The database keeps each file's outcome; finished jobs only need to make room for re-ingestion.
          removeOnComplete: true,
          removeOnFail: true,
        },
      })),
    ).catch((error: unknown) => {
      // Disconnected: the rows are saved `in_progress` and onReconnect re-enqueues them.
      if (this.connection.status !== 'ready') return this.skip(jobs.length, (error as Error).message);
      throw unavailable(error);
    });
  }

  /** Ready now, or (only while the first connection is being made) within a moment. */
  private async connected(): Promise<boolean> {
    if (this.connection.status === 'ready') return true;
    if (this.everReady) return false;
    const done = new AbortController();
    const ready = once(this.connection, 'ready', { signal: done.signal });
    await Promise.race([ready, sleep(FIRST_CONNECTION_WAIT_MS, undefined, { ref: false })]).catch(() => undefined);
    done.abort();
    return (this.connection.status as string) === 'ready'; // changed while we waited
  }

  private skip(jobs: number, reason: string): void {
    this.skipped = true;
    this.logger?.warn({ jobs, reason }, 'Redis is unavailable: ingestion will be queued when it is back');
  }

  /** Calls `listener` each time the connection to Redis is ready after it was lost, or after an enqueue was skipped. */
  onReconnect(listener: () => void): void {
    let lost = false;
    this.connection.on('close', () => (lost = true));
    this.connection.on('ready', () => {
      if (!lost && !this.skipped) return;
      lost = false;
      this.skipped = false;
      listener();
    });
  }

  async cancel(job: IngestJob): Promise<void> {
    // A waiting job is removed; an active one is locked and notices the deleted row itself.
    await this.queue.remove(jobId(job)).catch(() => 0);
  }

  async hasLiveJob(job: IngestJob): Promise<boolean> {
    // Finished jobs are removed at once (removeOnComplete/removeOnFail), so 'unknown' is the usual answer for them.
    const state = await this.queue.getJobState(jobId(job)).catch((error: unknown) => {
      throw unavailable(error);
    });
    return !['unknown', 'completed', 'failed'].includes(state);
  }

  async health(): Promise<void> {
    await this.connection.ping().catch((error: unknown) => {
      throw unavailable(error);
    });
  }

  async close(): Promise<void> {
    await this.queue.close();
    this.connection.disconnect();
  }
}

export interface WorkerOptions {
  queueName: string;
  concurrency: number;
  /** How long a job's lock lasts without renewal; a killed worker's job is retaken after about this long. */
  lockDurationMs: number;
}

/**
 * BullMQ renews each lock every lockDuration/2 from a timer, which cannot fire while the event loop
 * is blocked; the pipeline therefore also extends the lock before each write (holdsLock). A job
 * found stalled (lock expired) goes back to the queue up to this many times before BullMQ fails it;
 * the reconciler re-enqueues a file whose job was failed that way.
 */
const MAX_STALLED_COUNT = 3;

export class BullIngestWorker {
  private readonly connection: Redis;
  private readonly worker: Worker<IngestJob>;
  private readonly shutdown = new AbortController();

  constructor(redisUrl: string, handler: IngestHandler, logger: Logger, options: WorkerOptions) {
    this.connection = connect(redisUrl, 'worker');
    const shutdown = this.shutdown;
    this.worker = new Worker<IngestJob>(
      options.queueName,
      // Three parameters: BullMQ then gives each job an abort signal of its own (see lockRenewalFailed below).
      async (job: Job<IngestJob>, token?: string, lockLost?: AbortSignal) => {
        const attempts = job.opts.attempts ?? 1;
        const attempt = job.attemptsMade + 1;
        const signal = lockLost ? AbortSignal.any([shutdown.signal, lockLost]) : shutdown.signal;
        // extendLock answers 0 when the lock is not this token's any more: expired, retaken, or the job is gone.
        const holdsLock = async () => !lockLost?.aborted && token !== undefined && (await job.extendLock(token, options.lockDurationMs)) === 1;
        await handler(job.data, { signal, attempt, isFinalAttempt: attempt >= attempts, holdsLock });
      },
      {
        connection: this.connection,
        concurrency: options.concurrency,
        lockDuration: options.lockDurationMs,
        lockRenewTime: options.lockDurationMs / 2,
        stalledInterval: options.lockDurationMs,
        maxStalledCount: MAX_STALLED_COUNT,
      },
    );
    // The timer could not renew a lock (the job was retaken or left Redis): stop that job's run now,
    // rather than at its next write.
    this.worker.on('lockRenewalFailed', (jobIds) => {
      for (const id of jobIds) this.worker.cancelJob(id, 'the job lock was lost');
      logger.warn({ jobIds }, 'lost the lock of ingestion jobs; stopping them without further writes');
    });
    this.worker.on('failed', (job, error) => logger.warn({ err: error, kbFileId: job?.id }, 'ingestion attempt failed'));
    this.worker.on('error', (error) => {
      // What BullMQ reports after a lost lock (it can neither renew nor finish the job): expected, and the run has stopped.
      if (/^(could not renew lock|Missing lock for job)/.test(error.message)) logger.warn({ err: error }, 'ingestion job lock lost');
      else logger.error({ err: error }, 'ingestion worker error');
    });
  }

  async close(): Promise<void> {
    this.shutdown.abort();
    await this.worker.close();
    this.connection.disconnect();
  }
}
