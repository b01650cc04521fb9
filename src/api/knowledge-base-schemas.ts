/** Request schemas shared by the knowledge-base routes (and, later, by chat's `knowledge_bases`). */
import { z } from 'zod';

export const chunkingStrategySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auto') }),
  z.object({
    type: z.literal('static'),
    static: z
      .object({
        max_chunk_size_tokens: z.number().int().min(100).max(4096),
        chunk_overlap_tokens: z.number().int().min(0),
      })
      .refine((value) => value.chunk_overlap_tokens <= value.max_chunk_size_tokens / 2, {
        message: 'chunk_overlap_tokens must not exceed half of max_chunk_size_tokens',
        path: ['chunk_overlap_tokens'],
      }),
  }),
]);

const boundedRecord = <Value extends z.ZodType>(value: Value) =>
  z.record(z.string().min(1).max(64), value).refine((record) => Object.keys(record).length <= 16, {
    message: 'at most 16 keys are allowed',
  });

export const metadataSchema = boundedRecord(z.string().max(512));
export const attributesSchema = boundedRecord(z.union([z.string().max(512), z.number(), z.boolean()]));

export const fileIdsSchema = z.array(z.string().min(1)).min(1).max(500);

/** OpenAI's vector-store expiry: `days` (1–365) after the store was last used. */
export const expiresAfterSchema = z.object({ anchor: z.literal('last_active_at'), days: z.number().int().min(1).max(365) });
