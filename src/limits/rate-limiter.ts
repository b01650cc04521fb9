/**
 * Per-key rate limits: requests per minute and tokens per minute, checked together and
 * atomically. Two implementations: in memory (embedded mode, one process) and in Redis
 * (server mode, shared by every API replica).
 */
import { levelAt, msUntil, type BucketState } from './token-bucket.ts';

/** Limits in force for one key; undefined means unlimited. */
export interface Limits {
  rpm?: number;
  tpm?: number;
}

export interface RateCheck {
  /** The bucket owner: the API key id. */
  key: string;
  limits: Limits;
  /** Estimated tokens of the request, or undefined for requests that do not consume tokens. */
  tokens?: number;
}

export interface BucketStatus {
  limit: number;
  /** Whole units left after this request. */
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
}

export interface RateDecision {
  allowed: boolean;
  /** When refused: milliseconds until the request would be allowed (undefined: it never will, it is larger than the limit). */
  retryAfterMs?: number;
  /** Which limit refused it. */
  refusedBy?: 'requests' | 'tokens';
  requests?: BucketStatus;
  tokens?: BucketStatus;
}

export interface RateLimiter {
  check(request: RateCheck): Promise<RateDecision>;
  /** Charges (positive) or refunds (negative) tokens once the real usage is known. */
  correctTokens(key: string, tpm: number, delta: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Decides one check against the two buckets' current levels; both are charged only if both
 * allow it. Returns the decision and the new levels to store.
 */
export function decide(
  request: RateCheck,
  requestLevel: number,
  tokenLevel: number,
): { decision: RateDecision; requestLevel: number; tokenLevel: number } {
  const { rpm, tpm } = request.limits;
  const tokens = request.tokens ?? 0;
  const checksTokens = tpm !== undefined && request.tokens !== undefined;
  let refusedBy: RateDecision['refusedBy'];
  let retryAfterMs: number | undefined = 0;
  if (rpm !== undefined && requestLevel < 1) {
    refusedBy = 'requests';
    retryAfterMs = msUntil(requestLevel, 1, rpm);
  }
  if (checksTokens && tokenLevel < tokens) {
    refusedBy ??= 'tokens';
    retryAfterMs = tokens > tpm ? undefined : Math.max(retryAfterMs ?? 0, msUntil(tokenLevel, tokens, tpm));
  }
  const allowed = refusedBy === undefined;
  const nextRequests = allowed && rpm !== undefined ? requestLevel - 1 : requestLevel;
  const nextTokens = allowed && checksTokens ? tokenLevel - tokens : tokenLevel;
  const status = (level: number, limit: number): BucketStatus => ({
    limit,
    remaining: Math.max(0, Math.floor(level)),
    resetMs: msUntil(level, limit, limit),
  });
  return {
    decision: {
      allowed,
      ...(allowed ? {} : { refusedBy, retryAfterMs }),
      ...(rpm !== undefined ? { requests: status(nextRequests, rpm) } : {}),
      ...(tpm !== undefined ? { tokens: status(nextTokens, tpm) } : {}),
    },
    requestLevel: nextRequests,
    tokenLevel: nextTokens,
  };
}

const SWEEP_EVERY_CHECKS = 10_000;

interface MemoryBucket extends BucketState {
  limit: number;
}

/** Embedded mode: buckets in this process's memory. */
export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, MemoryBucket>();
  private checks = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async check(request: RateCheck): Promise<RateDecision> {
    const now = this.now();
    this.sweep(now);
    const { rpm, tpm } = request.limits;
    const requestKey = `${request.key}:requests`;
    const tokenKey = `${request.key}:tokens`;
    const result = decide(
      request,
      rpm === undefined ? 0 : levelAt(this.buckets.get(requestKey), rpm, now),
      tpm === undefined ? 0 : levelAt(this.buckets.get(tokenKey), tpm, now),
    );
    if (rpm !== undefined) this.buckets.set(requestKey, { level: result.requestLevel, updatedAtMs: now, limit: rpm });
    if (tpm !== undefined) this.buckets.set(tokenKey, { level: result.tokenLevel, updatedAtMs: now, limit: tpm });
    return result.decision;
  }

  async correctTokens(key: string, tpm: number, delta: number): Promise<void> {
    const now = this.now();
    const tokenKey = `${key}:tokens`;
    this.buckets.set(tokenKey, { level: levelAt(this.buckets.get(tokenKey), tpm, now) - delta, updatedAtMs: now, limit: tpm });
  }

  /** A full bucket is the same as an absent one: forgetting them keeps memory bounded by the keys in use. */
  private sweep(now: number): void {
    this.checks += 1;
    if (this.checks % SWEEP_EVERY_CHECKS !== 0) return;
    for (const [key, bucket] of this.buckets) {
      if (levelAt(bucket, bucket.limit, now) >= bucket.limit) this.buckets.delete(key);
    }
  }

  async close(): Promise<void> {}
}
