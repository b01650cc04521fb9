/**
 * Reclaims the storage of expired vector stores (their chunks in Qdrant, their file attachments)
 * and expired files (rows, blobs, chunks in every knowledge base). All state is in the database
 * (expiry columns and a lease per object), so a restart loses nothing and any number of processes
 * may sweep at once: each claims different objects, and a claim left by a dead process runs out.
 */
import type { Logger } from 'pino';
import type { FileStore } from '../store/files.ts';
import type { KnowledgeBaseStore } from '../store/knowledge-bases.ts';
import type { FileService } from './file-service.ts';
import type { KnowledgeBaseService } from './knowledge-base-service.ts';

/** Long enough for one object's Qdrant deletes on a slow day; a dead sweeper's claim is retried after it. */
const LEASE_MS = 5 * 60_000;
const BATCH = 50;

export interface SweepResult {
  knowledgeBases: number;
  files: number;
}

export class ExpirySweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<SweepResult> | undefined;

  constructor(
    private readonly kbs: KnowledgeBaseStore,
    private readonly files: FileStore,
    private readonly knowledgeBases: KnowledgeBaseService,
    private readonly fileService: FileService,
    private readonly logger: Logger,
  ) {}

  /** One pass over everything expired now. Overlapping calls in one process share the pass. */
  sweep(): Promise<SweepResult> {
    this.running ??= this.sweepAll().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async sweepAll(): Promise<SweepResult> {
    const result: SweepResult = { knowledgeBases: 0, files: 0 };
    for (let claimed = await this.kbs.claimExpired(BATCH, LEASE_MS); claimed.length > 0; claimed = await this.kbs.claimExpired(BATCH, LEASE_MS)) {
      for (const kb of claimed) {
        await this.knowledgeBases.reclaimExpired(kb);
        result.knowledgeBases += 1;
      }
    }
    for (let claimed = await this.files.claimExpired(BATCH, LEASE_MS); claimed.length > 0; claimed = await this.files.claimExpired(BATCH, LEASE_MS)) {
      for (const file of claimed) {
        await this.fileService.reclaimExpired(file);
        result.files += 1;
      }
    }
    if (result.knowledgeBases + result.files > 0) this.logger.info(result, 'reclaimed the storage of expired objects');
    return result;
  }

  /** Sweeps every `intervalMs` until stop(); a failed pass is logged and the next one retries. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.sweep().catch((error: unknown) => this.logger.warn({ err: error }, 'expiry sweep failed; retrying at the next interval'));
    }, intervalMs);
    // Never what keeps the process alive.
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }
}
