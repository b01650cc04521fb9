/** Prometheus metrics, on a registry of their own (no prom-client global state). */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  requests: Counter<'route' | 'model' | 'status'>;
  requestDuration: Histogram<'route' | 'model' | 'status'>;
  upstreamLatency: Histogram<'model' | 'upstream' | 'status'>;
  tokens: Counter<'model' | 'kind'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'cairn_' });
  const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  return {
    registry,
    requests: new Counter({
      name: 'cairn_http_requests_total',
      help: 'HTTP requests by route, model and status',
      labelNames: ['route', 'model', 'status'],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'cairn_http_request_duration_seconds',
      help: 'HTTP request latency by route, model and status',
      labelNames: ['route', 'model', 'status'],
      buckets,
      registers: [registry],
    }),
    upstreamLatency: new Histogram({
      name: 'cairn_upstream_response_seconds',
      help: 'Time until an upstream model server answered with headers',
      labelNames: ['model', 'upstream', 'status'],
      buckets,
      registers: [registry],
    }),
    tokens: new Counter({
      name: 'cairn_tokens_total',
      help: 'Tokens processed, by model and kind (prompt, completion)',
      labelNames: ['model', 'kind'],
      registers: [registry],
    }),
  };
}
