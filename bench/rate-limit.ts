/**
 * What a rate-limit check costs a request: `npm run bench:ratelimit`.
 *
 * Per check, sequentially (one request's added latency), p50/p99 of:
 *   - MemoryRateLimiter.check (embedded mode),
 *   - RedisRateLimiter.check (server mode: one Lua script, requests + tokens buckets),
 * against the baseline of the same run: a Redis PING on its own connection (the floor of any
 * Redis round trip here). Then the Redis limiter under 64 concurrent checks, as checks/s.
 *
 * Options: --checks=N (BENCH_CHECKS, default 20,000), --redis=url (REDIS_URL, default redis://127.0.0.1:6379).
 */
import { Redis } from 'ioredis';
import pino from 'pino';
import { MemoryRateLimiter, type RateLimiter } from '../src/limits/rate-limiter.ts';
import { RedisRateLimiter } from '../src/limits/redis-rate-limiter.ts';
import { option } from './options.ts';
import { fmt, fmtInt, percentile, table } from './report.ts';

const checks = Number(option('checks', 'BENCH_CHECKS') ?? 20_000);
const redisUrl = option('redis', 'REDIS_URL') ?? 'redis://127.0.0.1:6379';
// High limits: every check is admitted and charged, the common case.
const limits = { rpm: 1_000_000_000, tpm: 1_000_000_000 };

async function timed(run: (i: number) => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < 1_000; i += 1) await run(i); // warm-up: JIT, script cache, connection
  const samples: number[] = [];
  for (let i = 0; i < checks; i += 1) {
    const started = performance.now();
    await run(i);
    samples.push(performance.now() - started);
  }
  return samples.sort((a, b) => a - b);
}

async function throughput(limiter: RateLimiter, concurrency: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, client) => {
      while (next < checks) {
        next += 1;
        await limiter.check({ key: `bench-${process.pid}-${client}`, limits, tokens: 100 });
      }
    }),
  );
  return checks / ((performance.now() - started) / 1_000);
}

const ping = new Redis(redisUrl);
const memory = new MemoryRateLimiter();
const redis = new RedisRateLimiter(redisUrl, pino({ level: 'warn' }));
const key = `bench-${process.pid}`;
try {
  const rows: Array<[string, number[]]> = [
    ['Redis PING (baseline)', await timed(() => ping.ping())],
    ['MemoryRateLimiter.check', await timed(() => memory.check({ key, limits, tokens: 100 }))],
    ['RedisRateLimiter.check', await timed(() => redis.check({ key, limits, tokens: 100 }))],
  ];
  const baseline = percentile(rows[0]![1], 50);
  process.stdout.write(`\nrate-limit check cost, ${fmtInt(checks)} sequential checks each (Redis ${new URL(redisUrl).host})\n\n`);
  process.stdout.write(
    table(
      ['operation', 'p50 µs', 'p99 µs', 'p50 / PING p50'],
      rows.map(([name, samples]) => [name, fmt(percentile(samples, 50) * 1_000, 1), fmt(percentile(samples, 99) * 1_000, 1), fmt(percentile(samples, 50) / baseline, 2)]),
      [false, true, true, true],
    ),
  );
  process.stdout.write(`\n\nRedisRateLimiter under 64 concurrent checks: ${fmtInt(await throughput(redis, 64))} checks/s\n`);
} finally {
  ping.disconnect();
  await redis.close();
}
