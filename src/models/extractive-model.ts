/**
 * The built-in `extractive` chat model: no weights, no upstream. It answers from retrieved
 * passages alone by quoting the sentences that best match the question, with [n] markers,
 * in OpenAI's chat.completion (or chunk stream) format.
 */
import { once } from 'node:events';
import type { Response } from 'express';
import { newId } from '../ids.ts';
import { sseData } from './sse.ts';
import { extractiveAnswer, NO_KNOWLEDGE_BASE_ANSWER } from './extractive-answer.ts';

export const EXTRACTIVE_MODEL = 'extractive';

export interface ExtractiveRequest {
  question: string;
  /** Numbered sources; undefined when the request named no knowledge base. */
  sources: Array<{ index: number; text: string }> | undefined;
  stream: boolean;
  includeUsage: boolean;
  promptTokens: number;
  countTokens(text: string): number;
  /** Added to the completion (non-stream), or to the first and the finish chunk (stream). */
  extras: Record<string, unknown>;
  /** Builds the message annotations for the final answer text. */
  annotate(content: string): unknown[];
}

export function answerText(request: Pick<ExtractiveRequest, 'question' | 'sources'>): string {
  if (!request.sources) return NO_KNOWLEDGE_BASE_ANSWER;
  return extractiveAnswer(request.question, request.sources).content;
}

export async function respondExtractively(res: Response, request: ExtractiveRequest): Promise<{ promptTokens: number; completionTokens: number }> {
  const content = answerText(request);
  const completionTokens = request.countTokens(content);
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
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null, annotations }, logprobs: null, finish_reason: 'stop' }],
      usage,
      ...request.extras,
    });
    return { promptTokens: usage.prompt_tokens, completionTokens };
  }

  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const chunk = (delta: Record<string, unknown>, finishReason: string | null, extra: Record<string, unknown> = {}) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: EXTRACTIVE_MODEL,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...(request.includeUsage ? { usage: null } : {}),
    ...extra,
  });
  const send = async (payload: unknown): Promise<void> => {
    if (res.destroyed) return;
    if (!res.write(sseData(payload))) await Promise.race([once(res, 'drain'), once(res, 'close')]);
  };
  await send(chunk({ role: 'assistant', content: '' }, null, request.extras));
  // Word by word, as a model would stream it, so clients render it the same way.
  for (const piece of content.match(/\S+\s*/g) ?? []) await send(chunk({ content: piece }, null));
  // Repeated on the finish chunk for clients that skip the first one (LlamaIndex.TS).
  await send(chunk({ annotations }, 'stop', request.extras));
  if (request.includeUsage) await send({ id, object: 'chat.completion.chunk', created, model: EXTRACTIVE_MODEL, choices: [], usage });
  await send('[DONE]');
  res.end();
  return { promptTokens: usage.prompt_tokens, completionTokens };
}
