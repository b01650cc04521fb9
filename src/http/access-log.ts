/** One log line, the metrics and the usage record of every request, written when its response ends. */
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.ts';
import type { UsageStore } from '../store/usage.ts';
import { context } from './context.ts';

export function accessLog(logger: Logger, metrics: Metrics, usage: UsageStore): RequestHandler {
  return (req, res, next) => {
    // The full path as the client sent it: routers strip their mount prefix from req.path, and
    // the query string may carry secrets, so neither is logged.
    const path = pathOf(req.originalUrl);
    res.once('close', () => {
      const ctx = context(res);
      const latencyMs = performance.now() - ctx.startedAt;
      // An aborted response never sent its status; 499 is the customary "client closed request".
      const status = res.writableFinished ? res.statusCode : 499;
      const route = req.route ? `${req.baseUrl}${req.route.path}` : 'unmatched';
      const model = ctx.model ?? '';
      const labels = { route, model, status: String(status) };
      metrics.requests.inc(labels);
      metrics.requestDuration.observe(labels, latencyMs / 1000);
      if (ctx.usage && model) {
        metrics.tokens.inc({ model, kind: 'prompt' }, ctx.usage.promptTokens);
        metrics.tokens.inc({ model, kind: 'completion' }, ctx.usage.completionTokens);
      }
      if (ctx.caller && model) {
        usage.record({
          projectId: ctx.caller.projectId,
          apiKeyId: ctx.caller.keyId,
          requestId: ctx.requestId,
          endpoint: route,
          model,
          promptTokens: ctx.usage?.promptTokens ?? 0,
          completionTokens: ctx.usage?.completionTokens ?? 0,
          status,
          latencyMs: Math.round(latencyMs),
        });
      }
      logger.info(
        {
          requestId: ctx.requestId,
          method: req.method,
          path,
          status,
          latencyMs: Math.round(latencyMs * 10) / 10,
          model: model || undefined,
          projectId: ctx.caller?.projectId,
          keyId: ctx.caller?.keyId,
          promptTokens: ctx.usage?.promptTokens,
          completionTokens: ctx.usage?.completionTokens,
        },
        'request',
      );
    });
    next();
  };
}

function pathOf(url: string): string {
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}
