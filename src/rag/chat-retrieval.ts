/**
 * Cairn's extension fields on chat completions: `knowledge_bases` and `retrieval`. They are
 * validated here and removed before a request is forwarded to an upstream model.
 */
import { z } from 'zod';
import { InvalidRequestError } from '../errors.ts';
import { openAIFilterSchema } from '../vectors/qdrant-filters.ts';
import type { KnowledgeBaseQuery } from './retriever.ts';

export const MAX_KNOWLEDGE_BASES = 10;
export const DEFAULT_MAX_RESULTS = 8;

const knowledgeBaseRef = z.union([
  z.string().min(1),
  z.strictObject({
    id: z.string().min(1),
    max_num_results: z.number().int().min(1).max(50).optional().meta({ description: 'Candidates to take from this knowledge base before results are merged (default `retrieval.max_num_results`).' }),
    filters: openAIFilterSchema.optional(),
    score_threshold: z.number().min(0).max(1).optional().meta({ description: 'Minimum relevance score of a passage from this knowledge base.' }),
  }),
]);

export const knowledgeBasesField = z
  .array(knowledgeBaseRef)
  .max(MAX_KNOWLEDGE_BASES, `at most ${MAX_KNOWLEDGE_BASES} knowledge bases per request`)
  .meta({
    description:
      "Cairn extension: knowledge bases (ids, or objects with per-base options) to ground the answer in. The last user message is searched (its last 8,192 characters when longer); the answer cites passages as [n] and the response adds `citations`. Removed before the request reaches the model's upstream.",
  });

export const retrievalField = z
  .strictObject({
    max_num_results: z.number().int().min(1).max(50).optional().meta({ description: `Passages kept after merging all knowledge bases (default ${DEFAULT_MAX_RESULTS}).` }),
    score_threshold: z.number().min(0).max(1).optional().meta({ description: 'Minimum relevance score of a passage.' }),
    rewrite_query: z.boolean().optional().meta({ description: 'Rewrite a follow-up question into a standalone query with the same model before searching.' }),
  })
  .meta({ description: 'Cairn extension: retrieval options for `knowledge_bases`. Removed before forwarding.' });

export type KnowledgeBaseRefs = z.infer<typeof knowledgeBasesField>;
export type RetrievalOptions = z.infer<typeof retrievalField>;

export function toKnowledgeBaseQueries(refs: KnowledgeBaseRefs): KnowledgeBaseQuery[] {
  const queries = refs.map((ref) =>
    typeof ref === 'string'
      ? { id: ref }
      : { id: ref.id, maxResults: ref.max_num_results, filters: ref.filters, scoreThreshold: ref.score_threshold },
  );
  const ids = new Set(queries.map((query) => query.id));
  if (ids.size !== queries.length) throw new InvalidRequestError('Each knowledge base may appear once.', { param: 'knowledge_bases' });
  return queries;
}

interface MessageLike {
  role: string;
  content?: unknown;
}

/** Text of a message: a string, or the text parts of multimodal content. */
export function messageText(message: MessageLike): string {
  if (typeof message.content === 'string') return message.content;
  if (!Array.isArray(message.content)) return '';
  return message.content
    .filter((part): part is { type: 'text'; text: string } => part?.type === 'text' && typeof part.text === 'string')
    .map((part) => part.text)
    .join('\n');
}

/** What to search for: the last user message. */
export function lastUserText(messages: MessageLike[]): string {
  const last = [...messages].reverse().find((message) => message.role === 'user');
  const text = last ? messageText(last).trim() : '';
  if (!text) {
    throw new InvalidRequestError('Retrieval needs a user message with text to search for.', { param: 'messages' });
  }
  return text;
}

/**
 * Characters of the last user message that are searched, the bound `/search` puts on its `query`. A longer
 * message (a pasted document followed by the question) is searched by its tail, where the question usually
 * is; the model still receives the whole message. Without the cap a 15 MB message was tokenised, BM25-encoded
 * and embedded whole, on the event loop.
 */
export const MAX_QUERY_CHARS = 8192;

/** What to search for: the last user message, or its last `MAX_QUERY_CHARS` characters, starting at a word. */
export function retrievalQuery(messages: MessageLike[]): string {
  const text = lastUserText(messages);
  if (text.length <= MAX_QUERY_CHARS) return text;
  let start = text.length - MAX_QUERY_CHARS;
  // The cut most likely fell inside a word (or a surrogate pair): start after the next whitespace, if one is near.
  const lookahead = text.slice(start, start + 64);
  const space = lookahead.search(/\s/);
  if (space >= 0) start += space + 1;
  else if (/[\udc00-\udfff]/.test(text[start] ?? '')) start += 1;
  return text.slice(start).trim();
}

/** The request as the upstream should see it: Cairn's fields removed. */
export function withoutExtensions<Body extends Record<string, unknown>>(body: Body): Body {
  const forwarded: Record<string, unknown> = { ...body };
  delete forwarded.knowledge_bases;
  delete forwarded.retrieval;
  return forwarded as Body;
}
