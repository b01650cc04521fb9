/** POST /v1/chat/completions — OpenAI's request, proxied to the model's upstreams. Unknown fields are forwarded untouched. */
import { Router } from 'express';
import { z } from 'zod';
import { methodNotAllowed } from '../http/error-handler.ts';
import { parseRequest } from '../http/validate.ts';
import type { ModelRouter } from '../models/model-router.ts';
import { generationFields } from './generation-fields.ts';
import { proxyToModel } from './upstream-relay.ts';

const textPart = z.looseObject({ type: z.literal('text'), text: z.string() });
const contentPart = z.union([textPart, z.looseObject({ type: z.string().min(1) })]);

const message = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
  name: z.string().optional(),
});

export const chatCompletionRequest = z.looseObject({
  model: z.string().min(1),
  messages: z.array(message).min(1, 'messages must contain at least one message'),
  ...generationFields,
  max_completion_tokens: z.number().int().positive().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  tools: z.array(z.looseObject({ type: z.string() })).nullish(),
  response_format: z.looseObject({ type: z.string() }).nullish(),
});

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequest>;

export function chatRouter(models: ModelRouter): Router {
  const router = Router();
  router
    .route('/chat/completions')
    .post(async (req, res) => {
      const body = parseRequest(chatCompletionRequest, req.body);
      await proxyToModel(models, res, '/chat/completions', body);
    })
    .all(methodNotAllowed(['POST']));
  return router;
}
