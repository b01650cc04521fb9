/** POST /v1/embeddings — served by a local transformers.js model or an OpenAI-compatible embeddings upstream. */
import { Router } from 'express';
import { z } from 'zod';
import type { EmbeddingModels } from '../embeddings/embedding-models.ts';
import { InvalidRequestError, NotFoundError } from '../errors.ts';
import { context } from '../http/context.ts';
import { methodNotAllowed } from '../http/error-handler.ts';
import { parseRequest } from '../http/validate.ts';

export const embeddingRequest = z.looseObject({
  model: z.string().min(1),
  input: z.union([
    z.string().min(1, 'input must not be empty'),
    z.array(z.string().min(1, 'input must not contain empty strings')).min(1).max(2048),
  ]),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().positive().optional(),
  user: z.string().optional(),
});

function toBase64(vector: Float32Array): string {
  // Float32Array is little-endian on every platform Node runs on, which is what OpenAI sends.
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

export function embeddingsRouter(embeddings: EmbeddingModels): Router {
  const router = Router();
  router
    .route('/embeddings')
    .post(async (req, res) => {
      const input = (req.body as { input?: unknown } | undefined)?.input;
      if (Array.isArray(input) && (typeof input[0] === 'number' || Array.isArray(input[0]))) {
        // Token ids are tokenizer-specific (clients send tiktoken's); Cairn's models use their own tokenizers.
        throw new InvalidRequestError(
          "Token-array input is not supported: send the text itself. (LangChain's OpenAIEmbeddings sends token arrays unless check_embedding_ctx_length=False.)",
          { param: 'input' },
        );
      }
      const body = parseRequest(embeddingRequest, req.body);
      const embedder = embeddings.get(body.model);
      if (!embedder) {
        throw new NotFoundError(`The embedding model '${body.model}' does not exist`, { param: 'model', code: 'model_not_found' });
      }
      const inputs = typeof body.input === 'string' ? [body.input] : body.input;
      const abort = new AbortController();
      res.once('close', () => abort.abort());
      const { vectors, promptTokens } = await embedder.embed(inputs, abort.signal);
      if (body.dimensions !== undefined && body.dimensions !== vectors[0]?.length) {
        throw new InvalidRequestError(
          `The model '${body.model}' produces ${vectors[0]?.length}-dimensional embeddings and does not support other dimensions.`,
          { param: 'dimensions' },
        );
      }
      const ctx = context(res);
      ctx.model = embedder.id;
      ctx.usage = { promptTokens, completionTokens: 0 };
      res.json({
        object: 'list',
        data: vectors.map((vector, index) => ({
          object: 'embedding',
          index,
          embedding: body.encoding_format === 'base64' ? toBase64(vector) : Array.from(vector),
        })),
        model: embedder.id,
        usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
      });
    })
    .all(methodNotAllowed(['POST']));
  return router;
}
