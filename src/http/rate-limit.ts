/**
 * Enforces the caller's rate limits on every /v1 request and reports them in OpenAI's
 * headers (x-ratelimit-limit/remaining/reset-requests and -tokens). Token-consuming routes
 * are charged an estimate up front; when the response is done the estimate is replaced by
 * the real usage (or refunded if the request failed without using the model).
 */
import type { RequestHandler, Response } from 'express';
import { RateLimitError } from '../errors.ts';
import type { Limits, RateDecision, RateLimiter } from '../limits/rate-limiter.ts';
import { estimateTokens } from '../limits/token-estimate.ts';
import { callerOf, context } from './context.ts';

/** Go's time.Duration format, which OpenAI uses for reset headers: "20ms", "1.5s", "6m0s". */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const seconds = Number(((ms % 60_000) / 1_000).toFixed(3));
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

function setHeaders(res: Response, decision: RateDecision): void {
  for (const [kind, bucket] of [['requests', decision.requests], ['tokens', decision.tokens]] as const) {
    if (!bucket) continue;
    res.setHeader(`x-ratelimit-limit-${kind}`, String(bucket.limit));
    res.setHeader(`x-ratelimit-remaining-${kind}`, String(bucket.remaining));
    res.setHeader(`x-ratelimit-reset-${kind}`, formatDuration(bucket.resetMs));
  }
}

function refusal(decision: RateDecision, limits: Limits, tokens: number | undefined): RateLimitError {
  if (decision.retryAfterMs === undefined) {
    return new RateLimitError(
      `Request too large: it needs about ${tokens} tokens and this key's limit is ${limits.tpm} tokens per minute. Send a shorter request or ask for a higher limit.`,
    );
  }
  const kind = decision.refusedBy === 'tokens' ? 'tokens' : 'requests';
  const limit = kind === 'tokens' ? limits.tpm : limits.rpm;
  const wait = formatDuration(decision.retryAfterMs);
  return new RateLimitError(`Rate limit reached for ${kind} per minute (limit ${limit}) on this API key. Please try again in ${wait}.`, {
    headers: {
      'retry-after': String(Math.max(1, Math.ceil(decision.retryAfterMs / 1_000))),
      'retry-after-ms': String(decision.retryAfterMs),
    },
  });
}

/** `defaults` are the server-wide limits for keys whose key and project set none. */
export function rateLimit(limiter: RateLimiter, defaults: Limits): RequestHandler {
  return async (req, res, next) => {
    const caller = callerOf(res);
    const limits: Limits = { rpm: caller.limits?.rpm ?? defaults.rpm, tpm: caller.limits?.tpm ?? defaults.tpm };
    if (limits.rpm === undefined && limits.tpm === undefined) return next();

    const tokens = req.method === 'POST' ? estimateTokens(req.path, req.body) : undefined;
    const decision = await limiter.check({ key: caller.keyId, limits, tokens });
    setHeaders(res, decision);
    if (!decision.allowed) throw refusal(decision, limits, tokens);

    const { tpm } = limits;
    // Only a request whose estimate was charged is corrected (not one let through because the limiter was unreachable).
    if (tpm !== undefined && tokens !== undefined && decision.tokens) {
      res.once('close', () => {
        const usage = context(res).usage;
        const used = usage ? usage.promptTokens + usage.completionTokens : res.statusCode < 400 ? tokens : 0;
        if (used !== tokens) void limiter.correctTokens(caller.keyId, tpm, used - tokens);
      });
    }
    next();
  };
}
