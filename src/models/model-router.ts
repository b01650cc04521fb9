/**
 * Sends a request to a model's upstreams: least-in-flight replica, retries with backoff on
 * connection errors, 5xx and 429 (honouring `retry-after`), then the model's fallbacks. A replica
 * that lets a request time out before its headers is not asked again: the request moves on to
 * another replica or fallback at once, or fails with 504 when none is left.
 * Everything here happens before the first byte reaches the client; once the caller starts
 * relaying a response nothing is retried.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errors as undiciErrors, type Dispatcher } from 'undici';
import { ApiError, NotFoundError, UpstreamError, UpstreamTimeoutError } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import type { ModelRegistry, ModelRoute } from './model-registry.ts';
import type { Replica } from './replica.ts';
import { normaliseUpstreamError } from './upstream-errors.ts';

export interface UpstreamCall {
  /** Model id or alias as the client sent it. */
  model: string;
  /** Path under the upstream base URL, e.g. `/chat/completions`. */
  path: string;
  /** The request body; `model` is replaced by each replica's upstream model name. */
  body: Record<string, unknown>;
  requestId: string;
  signal: AbortSignal;
}

export interface UpstreamResponse {
  route: ModelRoute;
  replica: Replica;
  status: number;
  headers: Dispatcher.ResponseData['headers'];
  body: Dispatcher.ResponseData['body'];
  /** Must be called once the body has been consumed or abandoned: frees the replica's in-flight slot. */
  release(): void;
}

type Attempt =
  | { ok: true; response: UpstreamResponse }
  | { ok: false; error: ApiError; retryable: boolean; retryAfterMs?: number; timedOut?: boolean };

const RETRYABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED',
]);

function errorCode(error: unknown): string | undefined {
  const candidate = error as { code?: string; cause?: { code?: string } };
  return candidate.code === 'UND_ERR_CONNECT_TIMEOUT' || !candidate.cause?.code ? candidate.code : candidate.cause.code;
}

/** `retry-after` is seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export class ModelRouter {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly metrics: Metrics,
  ) {}

  async send(call: UpstreamCall): Promise<UpstreamResponse> {
    const chain = this.registry.chain(call.model);
    if (chain.length === 0) {
      throw new NotFoundError(`The model \`${call.model}\` does not exist or you do not have access to it.`, {
        param: 'model',
        code: 'model_not_found',
      });
    }
    let lastError: ApiError | undefined;
    for (const route of chain) {
      const failed = new Set<Replica>();
      const stalled = new Set<Replica>();
      for (let attempt = 0; attempt <= route.retries.max_retries; attempt += 1) {
        // A replica that already let this request time out is not asked again: that would double the wait.
        const replica = route.picker.pick(failed, stalled);
        if (!replica) break;
        const result = await this.attempt(route, replica, call);
        if (result.ok) return result.response;
        lastError = result.error;
        if (!result.retryable) throw result.error;
        failed.add(replica);
        if (result.timedOut) stalled.add(replica);
        if (attempt === route.retries.max_retries) break;
        if (result.timedOut) continue; // the timeout was the wait
        const wait = this.backoff(route, attempt, result.retryAfterMs);
        if (wait === undefined) break; // the upstream asked for a longer pause than we wait: try the fallback now
        await sleep(wait, undefined, { signal: call.signal });
      }
    }
    throw lastError ?? new UpstreamError(`No upstream could serve ${call.model}`);
  }

  private backoff(route: ModelRoute, attempt: number, retryAfterMs: number | undefined): number | undefined {
    const { backoff_ms: base, max_backoff_ms: max } = route.retries;
    if (retryAfterMs !== undefined) return retryAfterMs <= max ? retryAfterMs : undefined;
    // Full jitter: spreads the retries of many clients hitting the same failure.
    return Math.random() * Math.min(max, base * 2 ** attempt);
  }

  private async attempt(route: ModelRoute, replica: Replica, call: UpstreamCall): Promise<Attempt> {
    const started = performance.now();
    replica.inFlight += 1;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      replica.inFlight -= 1;
    };
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': call.requestId };
    if (replica.apiKey) headers.authorization = `Bearer ${replica.apiKey}`;
    try {
      const response = await replica.pool.request({
        method: 'POST',
        path: `${replica.basePath}${call.path}`,
        headers,
        body: JSON.stringify({ ...call.body, model: replica.upstreamModel }),
        signal: call.signal,
        headersTimeout: route.timeouts.first_byte_ms,
        bodyTimeout: route.timeouts.idle_ms,
      });
      this.metrics.upstreamLatency.observe(
        { model: route.id, upstream: replica.label, status: String(response.statusCode) },
        (performance.now() - started) / 1000,
      );
      if (response.statusCode < 400) {
        response.body.once('close', release);
        return { ok: true, response: { route, replica, status: response.statusCode, headers: response.headers, body: response.body, release } };
      }
      const text = await response.body.text().catch(() => '');
      release();
      const retryAfter = header(response.headers, 'retry-after');
      return {
        ok: false,
        error: normaliseUpstreamError(response.statusCode, text, route.id, retryAfter, replica.apiKey),
        // Client errors are final: the same request would fail the same way on every replica.
        retryable: response.statusCode === 429 || response.statusCode >= 500,
        retryAfterMs: parseRetryAfter(retryAfter),
      };
    } catch (error) {
      release();
      if (call.signal.aborted) throw error;
      this.metrics.upstreamLatency.observe(
        { model: route.id, upstream: replica.label, status: 'error' },
        (performance.now() - started) / 1000,
      );
      if (error instanceof undiciErrors.HeadersTimeoutError) {
        const timeout = new UpstreamTimeoutError(`Model ${route.id} did not start answering within ${route.timeouts.first_byte_ms} ms`);
        return { ok: false, retryable: true, timedOut: true, error: timeout };
      }
      const code = errorCode(error);
      if (code && RETRYABLE_CODES.has(code)) {
        return { ok: false, retryable: true, error: new UpstreamError(`Could not reach the upstream of model ${route.id} (${code})`) };
      }
      throw error;
    }
  }
}
