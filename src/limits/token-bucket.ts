/**
 * Token-bucket arithmetic shared by both rate limiters (the Redis Lua script mirrors it).
 * A bucket holds up to `limit` units and refills continuously at `limit` per minute, so a
 * client that stays under its per-minute limit is never refused, bursts up to the limit are
 * allowed, and "reset" is the time until the bucket is full again (OpenAI's meaning).
 */
export const WINDOW_MS = 60_000;

/** A bucket's stored state; an absent bucket is full. `level` may be negative after a correction. */
export interface BucketState {
  level: number;
  updatedAtMs: number;
}

export function levelAt(state: BucketState | undefined, limit: number, nowMs: number): number {
  if (!state) return limit;
  const refilled = state.level + (Math.max(0, nowMs - state.updatedAtMs) * limit) / WINDOW_MS;
  return Math.min(limit, refilled);
}

/** Milliseconds until a bucket at `level` holds `wanted` units (0 if it already does). */
export function msUntil(level: number, wanted: number, limit: number): number {
  return level >= wanted ? 0 : Math.ceil(((wanted - level) * WINDOW_MS) / limit);
}
