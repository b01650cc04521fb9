/**
 * POST /v1/chat/completions — OpenAI's request, proxied to the model's upstreams (unknown fields are
 * forwarded untouched), or grounded in knowledge bases when it names `knowledge_bases`.
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { methodNotAllowed } from '../http/error-handler.ts';
import { parseRequest } from '../http/validate.ts';
import type { ModelRouter } from '../models/model-router.ts';
import { knowledgeBasesField, retrievalField, withoutExtensions } from '../rag/chat-retrieval.ts';
import type { GroundedChat } from '../rag/grounded-chat.ts';
import { callerOf } from '../http/context.ts';
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
  // Cairn's extensions, removed before forwarding.
  knowledge_bases: knowledgeBasesField.optional(),
  retrieval: retrievalField.optional(),
});

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequest>;

/** `/v1/files` on the host and scheme the client used, so citation URLs work from where it stands. */
function filesUrlOf(req: Request): string {
  return `${req.protocol}://${req.get('host') ?? 'localhost'}${req.baseUrl}/files`;
}

export function chatRouter(models: ModelRouter, grounded: GroundedChat): Router {
  const router = Router();
  router
    .route('/chat/completions')
    .post(async (req, res) => {
      const body = parseRequest(chatCompletionRequest, req.body);
      if (grounded.handles(body)) await grounded.respond(res, callerOf(res).projectId, body, filesUrlOf(req));
      else await proxyToModel(models, res, '/chat/completions', withoutExtensions(body));
    })
    .all(methodNotAllowed(['POST']));
  return router;
}
