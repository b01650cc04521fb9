/** GET /v1/usage — Cairn's extension: token usage of the caller's project, per model. */
import { Router } from 'express';
import { z } from 'zod';
import { callerOf } from '../http/context.ts';
import { methodNotAllowed } from '../http/error-handler.ts';
import { parseRequest } from '../http/validate.ts';
import type { UsageStore } from '../store/usage.ts';

export const usageQuery = z.object({
  // Up to the year 9999: later dates are not valid timestamps.
  start_time: z.coerce.number().int().min(0).max(253_402_300_799).optional(),
  end_time: z.coerce.number().int().min(0).max(253_402_300_799).optional(),
});

const fromUnix = (seconds: number | undefined): Date | undefined => (seconds === undefined ? undefined : new Date(seconds * 1000));

export function usageRouter(usage: UsageStore): Router {
  const router = Router();
  router
    .route('/usage')
    .get(async (req, res) => {
      const query = parseRequest(usageQuery, { ...req.query });
      const rows = await usage.summary(callerOf(res).projectId, fromUnix(query.start_time), fromUnix(query.end_time));
      res.json({
        object: 'list',
        data: rows.map((row) => ({
          object: 'usage.model_summary',
          model: row.model,
          requests: row.requests,
          prompt_tokens: row.promptTokens,
          completion_tokens: row.completionTokens,
          total_tokens: row.promptTokens + row.completionTokens,
        })),
      });
    })
    .all(methodNotAllowed(['GET']));
  return router;
}
