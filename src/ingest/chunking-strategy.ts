/**
 * Chunk sizes from OpenAI's `chunking_strategy`: static sizes validated as OpenAI validates them, and the
 * `auto` sizes fitted to the knowledge base's embedder.
 */
import { InvalidRequestError } from '../errors.ts';
import type { ChunkingOptions } from './chunker.ts';

/** OpenAI's `chunking_strategy` (vector stores, file batches). */
export type ChunkingStrategy =
  | { type: 'auto' }
  | { type: 'static'; static: { max_chunk_size_tokens: number; chunk_overlap_tokens: number } };

/** OpenAI's limits for a static strategy. */
export const STATIC_MIN_TOKENS = 100;
export const STATIC_MAX_TOKENS = 4096;
/**
 * Auto chunks: 400 tokens with 80 (20 %) overlap. Smaller than OpenAI's 800/400 on purpose:
 * a short chunk is about one thing, so BM25 and a mean-pooled embedding both match it more
 * precisely (Chroma's chunking evaluation found 200–400-token chunks beat 800/400 on precision at
 * equal recall), citations point at a paragraph rather than a page, and five of them fit a small
 * model's context. 20 % overlap keeps a sentence cut at a boundary whole in one of the two
 * chunks without storing most text twice, as a 50 % overlap does.
 */
export const AUTO_MAX_TOKENS = 400;
export const AUTO_OVERLAP_RATIO = 0.2;
/**
 * Kept free in the embedder's input: [CLS]/[SEP] (or <s></s>), an instruction prefix some
 * embedders put before passages ("passage: "), and slack for an embedder whose tokenizer
 * counts a little differently from the one that sized the chunks.
 */
export const EMBEDDER_RESERVED_TOKENS = 16;
const AUTO_MIN_TOKENS = 32;

/** A `chunking_strategy` OpenAI would reject; a 400 invalid_request_error naming the bad field. */
export class InvalidChunkingStrategyError extends InvalidRequestError {
  constructor(message: string, param: string) {
    super(message, { param, code: 'invalid_chunking_strategy' });
  }
}

/**
 * Chunk sizes for a strategy. Static values are honoured as given (validated like OpenAI's API);
 * if they exceed the embedder's input, the dense vector covers the start of each chunk and BM25 all of it.
 * Auto fits the embedder (`embedderMaxTokens`, undefined for a lexical-only knowledge base, which
 * gets the same 400/80 so that switching a KB to lexical-only does not change its chunks).
 */
export function resolveChunking(strategy: ChunkingStrategy, embedderMaxTokens: number | undefined): ChunkingOptions {
  if (strategy.type === 'static') {
    const { max_chunk_size_tokens: maxTokens, chunk_overlap_tokens: overlapTokens } = strategy.static;
    const param = 'chunking_strategy.static';
    if (!Number.isInteger(maxTokens) || maxTokens < STATIC_MIN_TOKENS || maxTokens > STATIC_MAX_TOKENS) {
      throw new InvalidChunkingStrategyError(
        `max_chunk_size_tokens must be an integer between ${STATIC_MIN_TOKENS} and ${STATIC_MAX_TOKENS}, got ${maxTokens}.`,
        `${param}.max_chunk_size_tokens`,
      );
    }
    if (!Number.isInteger(overlapTokens) || overlapTokens < 0 || overlapTokens > maxTokens / 2) {
      throw new InvalidChunkingStrategyError(
        `chunk_overlap_tokens must be an integer between 0 and half of max_chunk_size_tokens (${Math.floor(maxTokens / 2)}), got ${overlapTokens}.`,
        `${param}.chunk_overlap_tokens`,
      );
    }
    return { maxTokens, overlapTokens };
  }
  const room = embedderMaxTokens === undefined ? AUTO_MAX_TOKENS : embedderMaxTokens - EMBEDDER_RESERVED_TOKENS;
  const maxTokens = Math.max(AUTO_MIN_TOKENS, Math.min(AUTO_MAX_TOKENS, Math.floor(room)));
  return { maxTokens, overlapTokens: Math.floor(maxTokens * AUTO_OVERLAP_RATIO) };
}
