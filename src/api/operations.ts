/** GET /healthz, /readyz, /metrics — unauthenticated operations endpoints. */
import { Router } from 'express';
import type { Registry } from 'prom-client';

/** A named dependency check; it throws when the dependency is not usable. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

export function operationsRouter(checks: ReadinessCheck[], registry: Registry): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const results = await Promise.all(
      checks.map(async ({ name, check }) => {
        try {
          await check();
          return [name, 'ok'] as const;
        } catch (error) {
          return [name, `failing: ${(error as Error).message}`] as const;
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
