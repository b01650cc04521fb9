/** GET /healthz, /readyz, /metrics — unauthenticated operations endpoints. */
import { Router } from 'express';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/** A named dependency check; it throws when the dependency is not usable. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

const CHECK_TIMEOUT_MS = 3_000;

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export function operationsRouter(checks: ReadinessCheck[], registry: Registry, logger: Logger): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const results = await Promise.all(
      checks.map(async ({ name, check }) => {
        try {
          await withTimeout(check(), CHECK_TIMEOUT_MS);
          return [name, 'ok'] as const;
        } catch (error) {
          // Details (hosts, driver messages) go to the log only: /readyz needs no authentication.
          logger.warn({ check: name, err: error }, 'readiness check failed');
          return [name, 'failing'] as const;
        }
      }),
    );
    const failing = results.filter(([, status]) => status !== 'ok').map(([name]) => name);
    const body = { status: failing.length === 0 ? 'ready' : 'unavailable', checks: Object.fromEntries(results) };
    if (failing.length === 0) {
      res.json(body);
      return;
    }
    res.status(503).json({
      ...body,
      error: { message: `Not ready: ${failing.join(', ')} failing`, type: 'service_unavailable', param: null, code: 'not_ready' },
    });
  });
  router.get('/metrics', async (_req, res) => {
    res.setHeader('content-type', registry.contentType);
    res.send(await registry.metrics());
  });
  return router;
}
