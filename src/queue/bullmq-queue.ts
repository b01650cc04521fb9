/**
 * Server mode's queue: BullMQ on Redis. The API process only enqueues; `cairn worker` processes
 * run the jobs. Job id = knowledge-base-file id, so enqueuing a file twice collapses into one job.
 * A worker that dies mid-job loses its lock; BullMQ's stalled-job check hands the job to another.
 */
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { DEFAULT_RETRY, type IngestHandler, type IngestJob, type IngestQueue, type RetryPolicy } from './ingest-queue.ts';

function connect(url: string): Redis {
  // BullMQ needs maxRetriesPerRequest: null so blocking commands survive reconnects.
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

export class BullIngestQueue implements IngestQueue {
  private readonly connection: Redis;
  private readonly queue: Queue<IngestJob>;

  constructor(redisUrl: string, queueName: string, private readonly retry: RetryPolicy = DEFAULT_RETRY) {
    this.connection = connect(redisUrl);
    this.queue = new Queue<IngestJob>(queueName, { connection: this.connection });
  }

  async enqueue(jobs: IngestJob[]): Promise<void> {
    if (jobs.length === 0) return;
    await this.queue.addBulk(
      jobs.map((job) => ({
        name: 'ingest',
        data: job,
        opts: {
          jobId: job.kbFileId,
          attempts: this.retry.attempts,
          backoff: { type: 'exponential', delay: this.retry.backoffMs },
          // The database keeps each file's outcome; finished jobs only need to make room for re-ingestion.
          removeOnComplete: true,
          removeOnFail: true,
        },
      })),
    );
  }

  async cancel(kbFileId: string): Promise<void> {
    // A waiting job is removed; an active one is locked and notices the deleted row itself.
    await this.queue.remove(kbFileId).catch(() => 0);
  }

  async health(): Promise<void> {
    await this.connection.ping();
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

export class BullIngestWorker {
  private readonly connection: Redis;
  private readonly worker: Worker<IngestJob>;
  private readonly shutdown = new AbortController();

  constructor(redisUrl: string, handler: IngestHandler, logger: Logger, options: WorkerOptions) {
    this.connection = connect(redisUrl);
    const shutdown = this.shutdown;
    this.worker = new Worker<IngestJob>(
      options.queueName,
      async (job: Job<IngestJob>) => {
        const attempts = job.opts.attempts ?? 1;
        const attempt = job.attemptsMade + 1;
        await handler(job.data, { signal: shutdown.signal, attempt, isFinalAttempt: attempt >= attempts });
      },
      {
        connection: this.connection,
        concurrency: options.concurrency,
        lockDuration: options.lockDurationMs,
        stalledInterval: options.lockDurationMs,
        maxStalledCount: 3,
      },
    );
    this.worker.on('failed', (job, error) => logger.warn({ err: error, kbFileId: job?.id }, 'ingestion attempt failed'));
    this.worker.on('error', (error) => logger.error({ err: error }, 'ingestion worker error'));
  }

  async close(): Promise<void> {
    this.shutdown.abort();
    await this.worker.close();
    this.connection.disconnect();
  }
}
