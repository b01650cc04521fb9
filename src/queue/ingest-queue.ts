/** The job-queue port for ingestion. BullMQ (server mode) and an in-process runner (embedded) implement it. */

export interface IngestJob {
  /** The knowledge-base-file row id. */
  kbFileId: string;
  /**
   * The attachment's generation. With the row id it makes the job id: enqueuing the same
   * attachment twice collapses into one job, while a re-attach (new generation) is a new job.
   */
  generation: string;
}

export interface JobContext {
  /** Aborted when the job is cancelled or the process shuts down. */
  signal: AbortSignal;
  attempt: number;
  /** On the last attempt a transient failure becomes the file's `last_error`. */
  isFinalAttempt: boolean;
  /**
   * Asked right before each write: does this run still own the job? BullMQ extends the job's
   * lock and answers false once the lock was lost (another worker may be running the job, or it
   * left Redis); such a run must stop without writing anything more.
   */
  holdsLock(): Promise<boolean>;
}

/** Thrown inside a job that no longer holds its lock: the run stops, writes nothing more, and is not a failure of the file. */
export class JobLockLostError extends Error {
  constructor(kbFileId: string) {
    super(`Ingestion of ${kbFileId} lost its job lock; another run owns the file now.`);
    this.name = 'JobLockLostError';
  }
}

/** Throws for transient failures (retried with backoff); permanent ones are recorded by the handler itself. */
export type IngestHandler = (job: IngestJob, context: JobContext) => Promise<void>;

export interface IngestQueue {
  enqueue(jobs: IngestJob[]): Promise<void>;
  /** Best effort: stops a queued or running job. The database row stays the source of truth. */
  cancel(job: IngestJob): Promise<void>;
  /** Is this job queued, delayed or running somewhere? The reconciler re-enqueues files whose job is not. */
  hasLiveJob(job: IngestJob): Promise<boolean>;
  health(): Promise<void>;
  close(): Promise<void>;
}

export interface RetryPolicy {
  attempts: number;
  backoffMs: number;
}

/** 8 attempts, 1 s doubling: about two minutes of retries (1+2+…+64 s), enough to ride out a Qdrant restart. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, backoffMs: 1_000 };
