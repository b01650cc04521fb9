/**
 * POST /v1/embeddings — served by a local transformers.js model or an OpenAI-compatible embeddings
 * upstream. Token-array input is decoded to text first (token-ids.ts); `dimensions` truncates
 * models configured for it (truncation.ts).
 */
import { Router } from 'express';
import { z } from 'zod';
import type { EmbeddingModels } from '../embeddings/embedding-models.ts';
import { TokenIdDecoder } from '../embeddings/token-ids.ts';
import { resizeEmbeddings } from '../embeddings/truncation.ts';
import { NotFoundError } from '../errors.ts';
import { context } from '../http/context.ts';
import { methodNotAllowed } from '../http/error-handler.ts';
import { parseRequest } from '../http/validate.ts';

/** OpenAI's limits: 2,048 inputs, 8,192 tokens (ada-002's context) per token array. */
const tokenIds = z.array(z.number().int().min(0)).min(1, 'a token array must not be empty').max(8192);

export const embeddingRequest = z.looseObject({
  model: z.string().min(1),
  input: z.union([
    z.string().min(1, 'input must not be empty'),
    z.array(z.string().min(1, 'input must not contain empty strings')).min(1).max(2048),
    tokenIds.meta({ description: 'One input as tiktoken token ids (cl100k_base, or o200k_base for gpt-4o/o-series model names).' }),
    z.array(tokenIds).min(1).max(2048).meta({ description: 'Several inputs as tiktoken token ids, as LangChain sends by default.' }),
  ]),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().positive().optional(),
  user: z.string().optional(),
});

function toBase64(vector: Float32Array): string {
  // Float32Array is little-endian on every platform Node runs on, which is what OpenAI sends.
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

/** The texts to embed: strings as given, token arrays decoded with the tokenizer the client counted with. */
async function textsOf(input: z.infer<typeof embeddingRequest>['input'], model: string, decoder: TokenIdDecoder): Promise<string[]> {
  if (typeof input === 'string') return [input];
  if (typeof input[0] === 'string') return input as string[];
  if (typeof input[0] === 'number') return decoder.decode(model, [input as number[]], true);
  return decoder.decode(model, input as number[][], false);
}

export function embeddingsRouter(embeddings: EmbeddingModels): Router {
  const router = Router();
  const tokenIdDecoder = new TokenIdDecoder();
  router
    .route('/embeddings')
    .post(async (req, res) => {
      const body = parseRequest(embeddingRequest, req.body);
      const embedder = embeddings.get(body.model);
      if (!embedder) {
        throw new NotFoundError(`The embedding model '${body.model}' does not exist`, { param: 'model', code: 'model_not_found' });
      }
      const inputs = await textsOf(body.input, body.model, tokenIdDecoder);
      const abort = new AbortController();
      res.once('close', () => abort.abort());
      const embedded = await embedder.embed(inputs, abort.signal);
      const vectors = resizeEmbeddings(embedded.vectors, body.dimensions, embeddings.truncationPolicy(embedder.id), embedder.id);
      const { promptTokens } = embedded;
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
