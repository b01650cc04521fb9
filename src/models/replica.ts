/** One upstream server of a model (a vLLM replica), with its own keep-alive connection pool. */
import { Pool } from 'undici';
import type { UpstreamConfig } from '../config.ts';

export class Replica {
  /** Requests sent and not yet finished (body fully read or aborted). Drives least-in-flight balancing. */
  inFlight = 0;
  readonly origin: string;
  /** Path prefix of base_url, e.g. `/v1`. */
  readonly basePath: string;
  readonly upstreamModel: string;
  readonly apiKey: string | undefined;
  readonly pool: Pool;
  readonly label: string;

  constructor(config: UpstreamConfig, connectTimeoutMs: number) {
    const url = new URL(config.base_url);
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.upstreamModel = config.model;
    this.apiKey = config.api_key;
    this.label = `${url.host}${this.basePath}`;
    this.pool = new Pool(this.origin, {
      connect: { timeout: connectTimeoutMs },
      keepAliveTimeout: 30_000,
      // No pipelining: one request per connection at a time, like every HTTP/1.1 client vLLM expects.
      pipelining: 1,
    });
  }

  /** Resolves when the upstream answers `GET {base_url}/models`; used by /readyz. */
  async ping(timeoutMs: number): Promise<void> {
    const headers: Record<string, string> = this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {};
    const response = await this.pool.request({
      method: 'GET',
      path: `${this.basePath}/models`,
      headers,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    await response.body.dump();
    if (response.statusCode >= 400) throw new Error(`${this.label} answered ${response.statusCode}`);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * Least in-flight first; ties rotate so that an idle pool still spreads requests evenly.
 * Replicas in `avoid` (failed earlier in this request) are used only when nothing else is left;
 * replicas in `exclude` (timed out in this request) never: undefined when only those are left.
 */
export class ReplicaPicker {
  private next = 0;

  constructor(private readonly replicas: Replica[]) {}

  pick(avoid: ReadonlySet<Replica>, exclude: ReadonlySet<Replica> = new Set()): Replica | undefined {
    const usable = this.replicas.filter((replica) => !exclude.has(replica));
    const candidates = usable.filter((replica) => !avoid.has(replica));
    const pool = candidates.length > 0 ? candidates : usable;
    if (pool.length === 0) return undefined;
    const start = this.next++ % pool.length;
    let best = pool[start]!;
    for (let i = 1; i < pool.length; i += 1) {
      const replica = pool[(start + i) % pool.length]!;
      if (replica.inFlight < best.inFlight) best = replica;
    }
    return best;
  }
}
