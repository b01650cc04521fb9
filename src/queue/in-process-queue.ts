/**
 * Embedded mode's queue: jobs run in the API process with bounded concurrency. Nothing is kept
 * in memory that the database does not also know: at start, the caller re-enqueues every file
 * still `in_progress`, which resumes work interrupted by a restart.
 */
import { EventEmitter, once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import type { Logger } from 'pino';
import { DEFAULT_RETRY, type IngestHandler, type IngestJob, type IngestQueue, type RetryPolicy } from './ingest-queue.ts';

export class InProcessIngestQueue implements IngestQueue {
  private readonly limit: LimitFunction;
  /** Jobs queued or running, by id: the same id is never run twice at once. */
  private readonly active = new Map<string, AbortController>();
  /** Ids enqueued again while running: they run once more afterwards. */
  private readonly rerun = new Set<string>();
  private readonly shutdown = new AbortController();
  private readonly events = new EventEmitter();

  constructor(
    private readonly handler: IngestHandler,
    private readonly logger: Logger,
    concurrency: number,
    private readonly retry: RetryPolicy = DEFAULT_RETRY,
  ) {
    this.limit = pLimit(concurrency);
  }

  async enqueue(jobs: IngestJob[]): Promise<void> {
    for (const job of jobs) {
      if (this.active.has(job.kbFileId)) {
        this.rerun.add(job.kbFileId);
        continue;
      }
      this.schedule(job);
    }
  }

  private schedule(job: IngestJob): void {
    const controller = new AbortController();
    this.active.set(job.kbFileId, controller);
    void this.limit(() => this.run(job, controller.signal)).finally(() => {
      this.active.delete(job.kbFileId);
      if (this.rerun.delete(job.kbFileId) && !this.shutdown.signal.aborted) this.schedule(job);
      this.events.emit(`done:${job.kbFileId}`);
    });
  }

  private async run(job: IngestJob, jobSignal: AbortSignal): Promise<void> {
    const signal = AbortSignal.any([jobSignal, this.shutdown.signal]);
    for (let attempt = 1; attempt <= this.retry.attempts && !signal.aborted; attempt += 1) {
      try {
        // One runner owns its jobs: the only way to lose one is to have it cancelled.
        const holdsLock = async () => !signal.aborted;
        await this.handler(job, { signal, attempt, isFinalAttempt: attempt === this.retry.attempts, holdsLock });
        return;
      } catch (error) {
        if (signal.aborted) return;
        this.logger.warn({ err: error, kbFileId: job.kbFileId, attempt }, 'ingestion attempt failed; will retry');
        if (attempt < this.retry.attempts) {
          await sleep(this.retry.backoffMs * 2 ** (attempt - 1), undefined, { signal }).catch(() => undefined);
        }
      }
    }
  }

  async cancel(job: IngestJob): Promise<void> {
    this.rerun.delete(job.kbFileId);
    this.active.get(job.kbFileId)?.abort();
  }

  async hasLiveJob(job: IngestJob): Promise<boolean> {
    return this.active.has(job.kbFileId);
  }

  async health(): Promise<void> {}

  /** Resolves once no job is queued or running. */
  async idle(): Promise<void> {
    while (this.active.size > 0) {
      await Promise.all([...this.active.keys()].map((id) => once(this.events, `done:${id}`)));
    }
  }

  /** Stops running jobs; their files stay `in_progress` and resume at the next start. */
  async close(): Promise<void> {
    this.shutdown.abort();
    await this.idle();
  }
}
