/**
 * Removes partial uploads left in the blob store's staging area by an API process that was killed
 * mid-upload (its own clean-up never ran), at start and then periodically. Only files untouched for
 * longer than `maxAgeMs` go: an upload still in progress writes to its file, and no request may
 * take longer than the request timeout to arrive, so the cut-off never catches a live upload.
 */
import type { Logger } from 'pino';
import type { BlobStore } from './blob-store.ts';

export class StagingSweeper {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  constructor(
    private readonly blobs: BlobStore,
    private readonly options: { maxAgeMs: number; everyMs: number; logger: Logger },
  ) {}

  /** Sweeps once (awaited), then every `everyMs` in the background. */
  async start(): Promise<void> {
    await this.sweep();
    this.timer = setInterval(() => void this.sweep(), this.options.everyMs);
    this.timer.unref();
  }

  /** One sweep at a time: a slow disk must not pile them up. */
  sweep(): Promise<void> {
    this.sweeping ??= this.run().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async run(): Promise<void> {
    try {
      const removed = await this.blobs.sweepStaging(this.options.maxAgeMs);
      if (removed > 0) this.options.logger.info({ removed }, 'removed partial uploads left in staging by an interrupted process');
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not sweep the upload staging area');
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping;
  }
}
