/**
 * Per-request usage records. Writes are buffered and flushed in one INSERT per batch so that
 * accounting never sits on a request's latency; reads flush first so they see every finished request.
 * Batches stay small because PGlite runs inside the API process: a large INSERT there stalls it.
 */
import type { Database } from './database.ts';

export interface UsageRecord {
  projectId: string;
  apiKeyId: string;
  requestId: string;
  endpoint: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  status: number;
  latencyMs: number;
}

export interface UsageSummary {
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
}

const COLUMNS = 9;

export class UsageStore {
  private pending: UsageRecord[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly db: Database,
    private readonly onError: (error: Error) => void,
    flushIntervalMs = 1_000,
    private readonly maxBatch = 100,
  ) {
    this.timer = setInterval(() => void this.flush(), flushIntervalMs);
    this.timer.unref();
  }

  record(record: UsageRecord): void {
    this.pending.push(record);
    if (this.pending.length >= this.maxBatch) void this.flush();
  }

  /** Writes everything recorded so far. Batches are written one after another, in order. */
  flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.flushing = this.flushing.then(() => (batch.length > 0 ? this.write(batch) : undefined));
    return this.flushing;
  }

  private async write(batch: UsageRecord[]): Promise<void> {
    const values: unknown[] = [];
    const rows = batch.map((record, index) => {
      values.push(
        record.projectId, record.apiKeyId, record.requestId, record.endpoint, record.model,
        record.promptTokens, record.completionTokens, record.status, record.latencyMs,
      );
      const base = index * COLUMNS;
      return `(${Array.from({ length: COLUMNS }, (_, i) => `$${base + i + 1}`).join(', ')})`;
    });
    try {
      await this.db.query(
        `INSERT INTO usage_records (project_id, api_key_id, request_id, endpoint, model,
           prompt_tokens, completion_tokens, status, latency_ms) VALUES ${rows.join(', ')}`,
        values,
      );
    } catch (error) {
      this.onError(error as Error);
    }
  }

  async summary(projectId: string, since?: Date, until?: Date): Promise<UsageSummary[]> {
    await this.flush();
    const rows = await this.db.query<{ model: string; requests: string | number; promptTokens: string | number; completionTokens: string | number }>(
      `SELECT model, count(*) AS requests,
              coalesce(sum(prompt_tokens), 0)::bigint AS "promptTokens",
              coalesce(sum(completion_tokens), 0)::bigint AS "completionTokens"
       FROM usage_records
       WHERE project_id = $1 AND ($2::timestamptz IS NULL OR created_at >= $2) AND ($3::timestamptz IS NULL OR created_at < $3)
       GROUP BY model ORDER BY model`,
      [projectId, since ?? null, until ?? null],
    );
    // Token totals outgrow 32-bit integers; drivers return bigint as text.
    return rows.map((row) => ({
      model: row.model,
      requests: Number(row.requests),
      promptTokens: Number(row.promptTokens),
      completionTokens: Number(row.completionTokens),
    }));
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
