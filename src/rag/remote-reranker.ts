/**
 * Reranking by a server: Hugging Face TEI (`POST /rerank` → `[{index, score}]`) or the
 * Cohere-style API that Cohere, Jina, vLLM and Infinity share (`POST /rerank` with `documents`
 * → `{results: [{index, relevance_score}]}`). Both answer sorted by score; this maps the scores
 * back to input order.
 */
import { Agent, request } from 'undici';
import { z } from 'zod';
import { ModelUpstreamError } from '../embeddings/errors.ts';
import { redactApiKey, upstreamMessage } from '../embeddings/upstream-messages.ts';
import type { Reranker } from './reranker.ts';

export interface RemoteRerankerOptions {
  id: string;
  api: 'tei' | 'cohere';
  /** Base URL the `rerank` path is appended to: `http://tei:8080`, `https://api.cohere.com/v2`, `http://vllm:8000/v1`. */
  baseUrl: string;
  /** Model name, sent by the Cohere-style API only (TEI serves one model). */
  model?: string;
  apiKey?: string;
  /** Whole call, connecting included. */
  timeoutMs: number;
  /** Cohere-style servers then score only the best `topN`; the others come back as -Infinity. */
  topN?: number;
}

/** A rerank server answered with an error, an unusable body, too late, or could not be reached. */
export class RerankUpstreamError extends ModelUpstreamError {}

const scored = z.object({ index: z.number().int().min(0) });
const teiResponseSchema = z.array(scored.extend({ score: z.number() }));
const cohereResponseSchema = z.object({ results: z.array(scored.extend({ relevance_score: z.number() })) });

export class RemoteReranker implements Reranker {
  readonly id: string;
  private readonly url: URL;
  /** Own connection pool, so close() releases exactly this server's sockets. */
  private readonly agent = new Agent();

  constructor(private readonly options: RemoteRerankerOptions) {
    if (options.api === 'cohere' && !options.model) throw new RangeError(`Reranker ${options.id}: the cohere API needs a model`);
    this.id = options.id;
    this.url = new URL('rerank', options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
  }

  async rerank(query: string, texts: string[], signal?: AbortSignal): Promise<number[]> {
    signal?.throwIfAborted();
    if (texts.length === 0) return [];
    const { api, apiKey, model, timeoutMs, topN } = this.options;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    // TEI rejects over-long inputs unless asked to truncate; raw_scores false gives sigmoid scores.
    const body =
      api === 'tei'
        ? { query, texts, raw_scores: false, truncate: true }
        : { model, query, documents: texts, top_n: Math.min(topN ?? texts.length, texts.length) };

    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let status: number | undefined;
    let text: string;
    try {
      const response = await request(this.url, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: combined,
        dispatcher: this.agent,
      });
      status = response.statusCode;
      text = await response.body.text();
    } catch (error) {
      if (signal?.aborted) throw signal.reason ?? error;
      if (timeout.aborted) throw this.failure(`did not answer within ${timeoutMs} ms`, status, error);
      throw this.failure(`could not be reached: ${(error as Error).message}`, status, error);
    }
    if (status < 200 || status >= 300) throw this.failure(`answered HTTP ${status}: ${upstreamMessage(text)}`, status);

    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch (error) {
      throw this.failure('answered with invalid JSON', status, error);
    }
    const results =
      api === 'tei'
        ? teiResponseSchema.safeParse(payload).data?.map(({ index, score }) => ({ index, score }))
        : cohereResponseSchema.safeParse(payload).data?.results.map(({ index, relevance_score }) => ({ index, score: relevance_score }));
    if (!results) {
      const expected = api === 'tei' ? 'an array of {index, score}' : 'a `results` array of {index, relevance_score}';
      throw this.failure(`answered without ${expected}`, status);
    }
    return this.inInputOrder(results, texts.length, status);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /** Scores by input index; texts the server left out (top_n) get -Infinity so they sort last. */
  private inInputOrder(results: Array<{ index: number; score: number }>, count: number, status: number): number[] {
    const scores = new Array<number>(count).fill(Number.NEGATIVE_INFINITY);
    const seen = new Set<number>();
    for (const { index, score } of results) {
      if (index >= count || seen.has(index)) throw this.failure(`returned an invalid result index ${index} for ${count} texts`, status);
      seen.add(index);
      scores[index] = score;
    }
    return scores;
  }

  /** Errors name the reranker and host, never the api key (a server may echo request headers back). */
  private failure(detail: string, status: number | undefined, cause?: unknown): RerankUpstreamError {
    const message = `Rerank server for "${this.id}" (${this.url.host}) ${detail}`;
    return new RerankUpstreamError(redactApiKey(message, this.options.apiKey), status, { cause });
  }
}
