/**
 * Server mode: the buckets live in Redis, so every API replica shares them. Each check is one
 * Lua script (atomic, one round trip, Redis's clock so replicas agree on time). The arithmetic
 * mirrors token-bucket.ts and `decide` in rate-limiter.ts.
 *
 * If Redis cannot answer, requests are let through (fail open) and a warning is logged: an
 * outage of the limiter should not become an outage of the API.
 */
import { Redis, type Result } from 'ioredis';
import type { Logger } from 'pino';
import { decide, type RateCheck, type RateDecision, type RateLimiter } from './rate-limiter.ts';
import { WINDOW_MS } from './token-bucket.ts';

const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, limit)
  if limit <= 0 then return 0 end
  local s = redis.call('HMGET', key, 'level', 'at')
  if not s[1] then return limit end
  local l = tonumber(s[1]) + math.max(0, now - tonumber(s[2])) * limit / ${WINDOW_MS}
  if l > limit then l = limit end
  return l
end
local function store(key, limit, l)
  if limit <= 0 then return end
  redis.call('HSET', key, 'level', string.format('%.17g', l), 'at', tostring(now))
  -- Once refilled the bucket equals an absent one, so it can expire then.
  redis.call('PEXPIRE', key, math.ceil((limit - l) * ${WINDOW_MS} / limit) + 1000)
end
`;

/** KEYS: requests bucket, tokens bucket. ARGV: rpm, tpm (0 = unlimited), tokens (-1 = not counted). Returns the levels before this request. */
const CHECK = `${PRELUDE}
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rl, tl = level(KEYS[1], rpm), level(KEYS[2], tpm)
local allowed = true
if rpm > 0 and rl < 1 then allowed = false end
if tpm > 0 and tokens >= 0 and tl < tokens then allowed = false end
if allowed then
  store(KEYS[1], rpm, rl - 1)
  if tokens >= 0 then store(KEYS[2], tpm, tl - tokens) end
end
-- %.17g round-trips a double exactly, so the caller's decide() sees the levels this script decided on.
return { string.format('%.17g', rl), string.format('%.17g', tl) }
`;

/** KEYS: tokens bucket. ARGV: tpm, delta. */
const CORRECT = `${PRELUDE}
local tpm, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
store(KEYS[1], tpm, level(KEYS[1], tpm) - delta)
return 1
`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cairnRateCheck(requestsKey: string, tokensKey: string, rpm: number, tpm: number, tokens: number): Result<[string, string], Context>;
    cairnRateCorrect(tokensKey: string, tpm: number, delta: number): Result<number, Context>;
  }
}

const WARN_EVERY_MS = 30_000;
const FIRST_CONNECTION_WAIT_MS = 2_000;

export class RedisRateLimiter implements RateLimiter {
  private readonly redis: Redis;
  /** Settles when the first connection is up (or failed): checks wait for it instead of failing open at startup. */
  private readonly firstConnection: Promise<unknown>;
  private lastWarningAt = 0;

  constructor(
    url: string,
    private readonly logger: Logger,
  ) {
    // No offline queue and one attempt: while Redis is away a check fails at once and the request goes through.
    this.redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: 1_000 });
    this.redis.on('error', (error) => this.warn(error));
    this.firstConnection = new Promise((resolve) => {
      this.redis.once('ready', resolve);
      this.redis.once('error', resolve);
      setTimeout(resolve, FIRST_CONNECTION_WAIT_MS).unref();
    });
    this.redis.defineCommand('cairnRateCheck', { numberOfKeys: 2, lua: CHECK });
    this.redis.defineCommand('cairnRateCorrect', { numberOfKeys: 1, lua: CORRECT });
  }

  async check(request: RateCheck): Promise<RateDecision> {
    const { rpm, tpm } = request.limits;
    try {
      await this.firstConnection;
      const [requestLevel, tokenLevel] = await this.redis.cairnRateCheck(
        bucketKey(request.key, 'requests'),
        bucketKey(request.key, 'tokens'),
        rpm ?? 0,
        tpm ?? 0,
        request.tokens ?? -1,
      );
      return decide(request, Number(requestLevel), Number(tokenLevel)).decision;
    } catch (error) {
      this.warn(error as Error);
      return { allowed: true };
    }
  }

  async correctTokens(key: string, tpm: number, delta: number): Promise<void> {
    try {
      await this.redis.cairnRateCorrect(bucketKey(key, 'tokens'), tpm, delta);
    } catch (error) {
      this.warn(error as Error);
    }
  }

  private warn(error: Error): void {
    const now = Date.now();
    if (now - this.lastWarningAt < WARN_EVERY_MS) return;
    this.lastWarningAt = now;
    this.logger.warn({ err: error }, 'rate limiter cannot reach Redis; requests are not rate limited until it is back');
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

/** The braces make both buckets of a key hash to one slot, so the script also works on Redis Cluster. */
function bucketKey(apiKeyId: string, kind: 'requests' | 'tokens'): string {
  return `cairn:ratelimit:{${apiKeyId}}:${kind}`;
}
