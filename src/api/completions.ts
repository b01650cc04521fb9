/** POST /v1/completions — the legacy text completions endpoint, proxied like chat. */
import { Router } from 'express';
import { z } from 'zod';
import { methodNotAllowed } from '../http/error-handler.ts';
import { parseRequest } from '../http/validate.ts';
import type { ModelRouter } from '../models/model-router.ts';
import { generationFields } from './generation-fields.ts';
import { proxyToModel } from './upstream-relay.ts';

export const completionRequest = z.looseObject({
  model: z.string().min(1),
  prompt: z.union([z.string(), z.array(z.string()), z.array(z.number().int()), z.array(z.array(z.number().int()))]),
  ...generationFields,
  echo: z.boolean().nullish(),
  best_of: z.number().int().min(1).max(20).nullish(),
  suffix: z.string().nullish(),
});

export function completionsRouter(models: ModelRouter): Router {
  const router = Router();
  router
    .route('/completions')
    .post(async (req, res) => {
      const body = parseRequest(completionRequest, req.body);
      await proxyToModel(models, res, '/completions', body);
    })
    .all(methodNotAllowed(['POST']));
  return router;
}
