/**
 * The built-in `extractive` chat model: no weights, no upstream. It answers from retrieved
 * passages alone by quoting the sentences that best match the question, with [n] markers,
 * in OpenAI's chat.completion (or chunk stream) format.
 */
import { once } from 'node:events';
import type { Response } from 'express';
import { newId } from '../ids.ts';
import type { TokenCounter } from '../ingest/token-counter.ts';
import { sseData } from './sse.ts';
import { extractiveAnswer, NO_KNOWLEDGE_BASE_ANSWER, type ExtractiveAnswer, type ExtractiveSource } from './extractive-answer.ts';
import { truncateToTokens } from './token-truncation.ts';

export const EXTRACTIVE_MODEL = 'extractive';

export interface ExtractiveRequest {
  /** The answer to send (see `answerFor`). */
  content: string;
  /** Choices to return. The model is deterministic: each is the same answer (OpenAI's `n`). */
  n: number;
  /** `max_completion_tokens` or `max_tokens`: a longer answer is cut, with finish_reason "length". */
  maxTokens: number | undefined;
  stream: boolean;
  includeUsage: boolean;
  promptTokens: number;
  counter: TokenCounter;
  /** Added to the completion (non-stream), or to the first and the finish chunk of the first choice (stream). */
  extras: Record<string, unknown>;
  /** Builds the message annotations for the final answer text. */
  annotate(content: string): unknown[];
}

/** The answer for a question over numbered sources; undefined sources: the request named no knowledge base. */
export function answerFor(question: string, sources: ExtractiveSource[] | undefined): ExtractiveAnswer {
  if (!sources) return { content: NO_KNOWLEDGE_BASE_ANSWER, cited: [], quotes: [], found: false };
  return extractiveAnswer(question, sources);
}

export async function respondExtractively(res: Response, request: ExtractiveRequest): Promise<{ promptTokens: number; completionTokens: number }> {
  const { text: content, truncated } =
    request.maxTokens === undefined ? { text: request.content, truncated: false } : truncateToTokens(request.content, request.maxTokens, request.counter);
  const finishReason = truncated ? 'length' : 'stop';
  const choices = Array.from({ length: Math.max(1, request.n) }, (_, index) => index);
  // Like OpenAI's: completion tokens are counted over all choices.
  const completionTokens = request.counter.count(content) * choices.length;
  const usage = { prompt_tokens: request.promptTokens, completion_tokens: completionTokens, total_tokens: request.promptTokens + completionTokens };
  const id = newId('chatcmpl-', 24);
  const created = Math.floor(Date.now() / 1000);
  const annotations = request.annotate(content);
  res.setHeader('x-cairn-model', EXTRACTIVE_MODEL);

  if (!request.stream) {
    res.json({
      id,
      object: 'chat.completion',
      created,
      model: EXTRACTIVE_MODEL,
      choices: choices.map((index) => ({
        index,
        message: { role: 'assistant', content, refusal: null, annotations },
        logprobs: null,
        finish_reason: finishReason,
      })),
      usage,
      ...request.extras,
    });
    return { promptTokens: usage.prompt_tokens, completionTokens };
  }

  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const chunk = (index: number, delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: EXTRACTIVE_MODEL,
    choices: [{ index, delta, logprobs: null, finish_reason: finish }],
    ...(request.includeUsage ? { usage: null } : {}),
    ...extra,
  });
  const send = async (payload: unknown): Promise<void> => {
    if (res.destroyed) return;
    if (!res.write(sseData(payload))) await Promise.race([once(res, 'drain'), once(res, 'close')]);
  };
  for (const index of choices) {
    await send(chunk(index, { role: 'assistant', content: '' }, null, index === 0 ? request.extras : {}));
    // Word by word, as a model would stream it, so clients render it the same way.
    for (const piece of content.match(/\S+\s*/g) ?? []) await send(chunk(index, { content: piece }, null));
    // Repeated on the finish chunk for clients that skip the first one (LlamaIndex.TS).
    await send(chunk(index, { annotations }, finishReason, index === 0 ? request.extras : {}));
  }
  if (request.includeUsage) await send({ id, object: 'chat.completion.chunk', created, model: EXTRACTIVE_MODEL, choices: [], usage });
  await send('[DONE]');
  res.end();
  return { promptTokens: usage.prompt_tokens, completionTokens };
}
