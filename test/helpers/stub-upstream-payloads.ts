/**
 * Builders for the OpenAI/vLLM-shaped bodies the stub upstream (stub-upstream.ts) sends, plus its
 * small node:http helpers. "Tokens" are whitespace-separated words: enough to make usage checkable.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface Usage { prompt_tokens: number; completion_tokens: number; total_tokens: number }

export const STUB_MODEL_ID = 'stub-model';
export const EMBEDDING_DIMENSIONS = 8;

/** vLLM's error body: {"object":"error","message":...,"type":"BadRequestError","param":null,"code":status}. */
export function vllmError(status: number, message: string): Record<string, unknown> {
  return { object: 'error', message, type: 'BadRequestError', param: null, code: status };
}

/** Split text into word pieces that keep their trailing whitespace, so pieces.join('') === text (minus leading space). */
export function wordPieces(text: string): string[] {
  return text.match(/\S+\s*/g) ?? [];
}

export function countWords(text: string): number {
  return wordPieces(text).length;
}

/** Words in message contents, including the text parts of array content. */
export function countMessageTokens(messages: unknown): number {
  if (!Array.isArray(messages)) return 0;
  let n = 0;
  for (const m of messages) {
    const content = (m as { content?: unknown } | null)?.content;
    if (typeof content === 'string') n += countWords(content);
    else if (Array.isArray(content)) {
      for (const part of content) {
        const text = (part as { text?: unknown } | null)?.text;
        if (typeof text === 'string') n += countWords(text);
      }
    }
  }
  return n;
}

/** Legacy prompt / embeddings input: a string, string[], token array, or array of token arrays. */
export function inputItems(input: unknown): Array<string | number[]> {
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input)) return [];
  if (input.every((x) => typeof x === 'number')) return [input as number[]];
  return input.filter((x): x is string | number[] => typeof x === 'string' || Array.isArray(x));
}

export function countInputTokens(input: unknown): number {
  return inputItems(input).reduce((n, item) => n + (typeof item === 'string' ? countWords(item) : item.length), 0);
}

export function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** The reply, cut to `max_tokens` (or `max_completion_tokens`) words when the request asks for fewer. */
export function replyPieces(content: string, body: Record<string, unknown>): { pieces: string[]; finish: 'stop' | 'length' } {
  const pieces = wordPieces(content);
  const limit = body.max_tokens ?? body.max_completion_tokens;
  if (typeof limit === 'number' && Number.isInteger(limit) && limit >= 0 && limit < pieces.length) {
    const cut = pieces.slice(0, limit);
    if (cut.length > 0) cut[cut.length - 1] = cut[cut.length - 1]!.trimEnd();
    return { pieces: cut, finish: 'length' };
  }
  return { pieces, finish: 'stop' };
}

export const newId = (prefix: string): string => `${prefix}-${randomUUID().replaceAll('-', '')}`;
export const now = (): number => Math.floor(Date.now() / 1000);

export function modelList(): Record<string, unknown> {
  return {
    object: 'list',
    data: [{ id: STUB_MODEL_ID, object: 'model', created: now(), owned_by: 'vllm', root: STUB_MODEL_ID, parent: null, max_model_len: 4096 }],
  };
}

/** Deterministic unit vector of EMBEDDING_DIMENSIONS floats derived from sha256 of the input. */
export function embedVector(item: string | number[]): number[] {
  const digest = createHash('sha256').update(typeof item === 'string' ? item : JSON.stringify(item)).digest();
  const raw = Array.from({ length: EMBEDDING_DIMENSIONS }, (_, i) => digest.readUInt32LE(i * 4) / 0x1_0000_0000 - 0.5);
  const norm = Math.hypot(...raw) || 1;
  // Round through float32 so the float and base64 encodings carry identical values.
  return raw.map((x) => Math.fround(x / norm));
}

export function float32Base64(vector: number[]): string {
  const buf = Buffer.alloc(vector.length * 4);
  vector.forEach((x, i) => buf.writeFloatLE(x, i * 4));
  return buf.toString('base64');
}

export function embeddingsBody(body: Record<string, unknown>): Record<string, unknown> {
  const items = inputItems(body.input);
  const base64 = body.encoding_format === 'base64';
  const prompt = countInputTokens(body.input);
  return {
    object: 'list',
    id: newId('embd'),
    created: now(),
    model: typeof body.model === 'string' ? body.model : STUB_MODEL_ID,
    data: items.map((item, index) => {
      const vector = embedVector(item);
      return { object: 'embedding', index, embedding: base64 ? float32Base64(vector) : vector };
    }),
    usage: { prompt_tokens: prompt, total_tokens: prompt, completion_tokens: 0 },
  };
}

export type Kind = 'chat' | 'completion';

/** Everything needed to render one generation, streamed or not. */
export interface Generation {
  kind: Kind;
  id: string;
  created: number;
  model: string;
  pieces: string[];
  finish: 'stop' | 'length';
  usage: Usage;
  includeUsage: boolean;
  /** Chat only: tool calls replace the text. */
  toolCalls?: Array<{ name: string; arguments: string }>;
}

function toolCallsOf(g: Generation): Array<{ index: number; id: string; type: 'function'; function: { name: string; arguments: string } }> {
  return (g.toolCalls ?? []).map((call, index) => ({ index, id: `call_${g.id.slice(-8)}_${index}`, type: 'function', function: call }));
}

export function completionBody(g: Generation): Record<string, unknown> {
  if (g.kind === 'chat' && g.toolCalls) {
    const tool_calls = toolCallsOf(g).map(({ index: _index, ...call }) => call);
    const choice = { index: 0, message: { role: 'assistant', content: null, tool_calls }, logprobs: null, finish_reason: 'tool_calls' };
    return { id: g.id, object: 'chat.completion', created: g.created, model: g.model, choices: [choice], usage: g.usage };
  }
  const text = g.pieces.join('');
  const choice = g.kind === 'chat'
    ? { index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: g.finish }
    : { index: 0, text, logprobs: null, finish_reason: g.finish };
  return {
    id: g.id,
    object: g.kind === 'chat' ? 'chat.completion' : 'text_completion',
    created: g.created,
    model: g.model,
    choices: [choice],
    usage: g.usage,
  };
}

/** SSE event strings for a stream, in order, ending with `data: [DONE]`. */
export function streamEvents(g: Generation): string[] {
  const object = g.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const chunk = (choices: unknown[], usageValue?: Usage | null): string => {
    const c: Record<string, unknown> = { id: g.id, object, created: g.created, model: g.model, choices };
    if (g.includeUsage) c.usage = usageValue ?? null;
    return `data: ${JSON.stringify(c)}\n\n`;
  };
  const piece = (text: string, finish: string | null): unknown => (g.kind === 'chat'
    ? { index: 0, delta: finish ? {} : { content: text }, logprobs: null, finish_reason: finish }
    : { index: 0, text, logprobs: null, finish_reason: finish });

  const events: string[] = [];
  if (g.kind === 'chat') {
    events.push(chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
  }
  if (g.kind === 'chat' && g.toolCalls) {
    for (const call of toolCallsOf(g)) events.push(chunk([{ index: 0, delta: { tool_calls: [call] }, logprobs: null, finish_reason: null }]));
    events.push(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }]));
    if (g.includeUsage) events.push(chunk([], g.usage));
    events.push('data: [DONE]\n\n');
    return events;
  }
  for (const p of g.pieces) events.push(chunk([piece(p, null)]));
  events.push(chunk([piece('', g.finish)]));
  if (g.includeUsage) events.push(chunk([], g.usage));
  events.push('data: [DONE]\n\n');
  return events;
}

// --- node:http helpers ---

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new Error('client left before sending the whole body'));
    });
  });
}

/** Sends a complete response; a string body goes out verbatim (text/plain unless headers say otherwise). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const type = typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json';
  res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

export function lowerCaseKeys(headers: Record<string, string> = {}): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

export function isObject(value: unknown): value is Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
