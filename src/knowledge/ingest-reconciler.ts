/**
 * Finds files left `in_progress` with no live job and queues them again. A job can leave the queue
 * without finishing its file: BullMQ fails a job that stalled too often (a worker killed or blocked
 * past its lock, repeatedly), a Redis restart without persistence drops every job, an enqueue is
 * skipped while Redis is away. The database row is the record of what must be ingested, so this
 * runs in every worker (and in the embedded API process), not only when an API starts.
 *
 * A row qualifies once nothing has updated it for the grace period (a running job saves progress
 * after each batch) and the queue knows no waiting, delayed or active job for its generation.
 * Claiming touches the row in one conditional UPDATE, so when several workers reconcile at once
 * each file is re-enqueued by one of them; job ids are idempotent besides.
 *
 * A file re-enqueued `maxRequeues` times in a row without saving any progress (it kills or stalls
 * every worker that takes it) is failed with a `server_error` instead of being retried forever.
 */
import type { Logger } from 'pino';
import type { IngestQueue } from '../queue/ingest-queue.ts';
import type { KbFileStore } from '../store/kb-files.ts';
import { jobOf } from './knowledge-base-service.ts';

export interface ReconcileOptions {
  /** How often to look; 0 turns the reconciler off. */
  intervalMs: number;
  /** How long a row in progress must have gone without an update before it counts as orphaned. */
  graceMs: number;
  /** Re-enqueues in a row without progress before the file is failed. */
  maxRequeues: number;
  /** Rows examined per round, oldest first; the rest wait for the next round. */
  limit?: number;
}

export class IngestReconciler {
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly kbFiles: KbFileStore,
    private readonly queue: IngestQueue,
    private readonly logger: Logger,
    private readonly options: ReconcileOptions,
  ) {}

  start(): void {
    if (this.options.intervalMs <= 0 || this.stopped) return;
    // unref: a pending round must not keep a process alive that is otherwise done.
    this.timer = setTimeout(() => {
      this.round = this.reconcile()
        .catch((error: unknown) => this.logger.warn({ err: error }, 'could not reconcile files in progress; will try again'))
        .finally(() => this.start());
    }, this.options.intervalMs).unref();
  }

  /** One round: re-enqueues orphaned files (failing the hopeless ones) and returns the ids of those re-enqueued. */
  async reconcile(): Promise<string[]> {
    const { graceMs, maxRequeues, limit = 500 } = this.options;
    const stale = await this.kbFiles.stale(graceMs, limit);
    const orphans = [];
    for (const row of stale) {
      if (!(await this.queue.hasLiveJob(jobOf(row)))) orphans.push(row);
    }
    const claimed = await this.kbFiles.claimStale(orphans, graceMs);
    const hopeless = claimed.filter((row) => row.requeues > maxRequeues);
    for (const row of hopeless) {
      const message = `Ingestion was interrupted ${maxRequeues + 1} times in a row without progress (a worker died or lost its job while ingesting this file); the server log has the details.`;
      await this.kbFiles.fail(row.id, row.generation, { code: 'server_error', message });
    }
    if (hopeless.length > 0) this.logger.error({ kbFileIds: hopeless.map((row) => row.id) }, 'files kept losing their ingestion job without progress: failed');
    const requeued = claimed.filter((row) => row.requeues <= maxRequeues);
    if (requeued.length === 0) return [];
    await this.queue.enqueue(requeued.map(jobOf));
    const ids = requeued.map((row) => row.id);
    this.logger.warn({ kbFileIds: ids }, 'files in progress had no live ingestion job: re-enqueued');
    return ids;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
  }
}
