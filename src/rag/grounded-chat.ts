/**
 * Chat completions with `knowledge_bases`: retrieve, pack the sources into the prompt, and
 * answer with citations — through an upstream model, or through the built-in `extractive`
 * model when the request names it or no upstream is configured.
 */
import type { Response } from 'express';
import type { Logger } from 'pino';
import type { ChatCompletionRequest } from '../api/chat.ts';
import { proxyToModel, type ResponseDecorator } from '../api/upstream-relay.ts';
import { NotFoundError } from '../errors.ts';
import { context } from '../http/context.ts';
import type { TokenCounter } from '../ingest/token-counter.ts';
import { answerFor, EXTRACTIVE_MODEL, respondExtractively } from '../models/extractive-model.ts';
import type { ModelRegistry } from '../models/model-registry.ts';
import type { ModelRouter } from '../models/model-router.ts';
import { messageText, retrievalQuery, toKnowledgeBaseQueries, withoutExtensions, DEFAULT_MAX_RESULTS } from './chat-retrieval.ts';
import { annotationsFor, citationsOf, type Citation } from './citations.ts';
import { injectSources, packSources, sourceBudget, sourcesSystemMessage, type Source } from './context.ts';
import type { SearchableKnowledgeBase } from '../store/knowledge-bases.ts';
import type { KnowledgeBaseQuery, Retriever } from './retriever.ts';

/**
 * Exact counts for ordinary prompts; past this many characters the rest is estimated (4 per
 * token), so one huge message cannot keep the tokenizer, and the server, busy for seconds.
 */
const EXACTLY_COUNTED_CHARS = 50_000;

function estimateTokens(text: string, counter: TokenCounter): number {
  if (text.length <= EXACTLY_COUNTED_CHARS) return counter.count(text);
  return counter.count(text.slice(0, EXACTLY_COUNTED_CHARS)) + Math.ceil((text.length - EXACTLY_COUNTED_CHARS) / 4);
}

/** The extractive model quotes sentences; this only bounds how much it reads. */
const EXTRACTIVE_CONTEXT_WINDOW = 8192;

const REWRITE_INSTRUCTIONS =
  'Rewrite the last question of this conversation as one standalone search query that needs no earlier context. ' +
  'Answer with the query only.';

export interface GroundedChatDeps {
  retriever: Retriever;
  models: ModelRouter;
  registry: ModelRegistry;
  tokenCounter: () => Promise<TokenCounter>;
  logger: Logger;
}

/**
 * Streams carry `citations` on the first chunk and again on each finish chunk: some clients
 * (LlamaIndex.TS) skip the first chunk, which has no content.
 */
function citingDecorator(citations: Citation[], filesUrl: string): ResponseDecorator {
  const textByChoice = new Map<number, string>();
  return {
    completion(body) {
      body.citations = citations;
      for (const choice of (body.choices as Array<{ message?: { content?: string | null; annotations?: unknown[] } }>) ?? []) {
        if (choice.message) choice.message.annotations = annotationsFor(choice.message.content ?? '', citations, filesUrl);
      }
    },
    chunk(event, first) {
      if (first) event.citations = citations;
      for (const choice of (event.choices as Array<{ index: number; delta?: { content?: string; annotations?: unknown[] }; finish_reason?: string | null }>) ?? []) {
        const text = (textByChoice.get(choice.index) ?? '') + (choice.delta?.content ?? '');
        textByChoice.set(choice.index, text);
        if (!choice.finish_reason) continue;
        event.citations = citations;
        if (choice.delta) choice.delta.annotations = annotationsFor(text, citations, filesUrl);
      }
    },
  };
}

export class GroundedChat {
  constructor(private readonly deps: GroundedChatDeps) {}

  private isExtractive(model: string): boolean {
    // With no upstream configured, every chat model name is served by `extractive`, so SDK code works out of the box.
    return model === EXTRACTIVE_MODEL || (!this.deps.registry.hasModels() && !this.deps.registry.resolve(model));
  }

  /** Requests Cairn answers itself or enriches: with knowledge bases, or for the extractive model. */
  handles(body: ChatCompletionRequest): boolean {
    return (body.knowledge_bases?.length ?? 0) > 0 || this.isExtractive(body.model);
  }

  /** `filesUrl`: this server's `/v1/files` URL as the client reached it, for the annotations' `url`. */
  async respond(res: Response, projectId: string, body: ChatCompletionRequest, filesUrl: string): Promise<void> {
    const { retriever, registry, models } = this.deps;
    const extractive = this.isExtractive(body.model);
    const route = extractive ? undefined : registry.resolve(body.model);
    if (!extractive && !route) {
      throw new NotFoundError(`The model \`${body.model}\` does not exist or you do not have access to it.`, { param: 'model', code: 'model_not_found' });
    }
    const queries = toKnowledgeBaseQueries(body.knowledge_bases ?? []);
    // Every knowledge base is checked before anything is searched: a foreign id leaks nothing.
    const kbs = await retriever.resolve(projectId, queries).catch((error: unknown) => {
      if (error instanceof NotFoundError) throw new NotFoundError(error.message, { param: 'knowledge_bases' });
      throw error;
    });

    const counter = await this.deps.tokenCounter();
    const promptTokens = body.messages.reduce((sum, message) => sum + estimateTokens(messageText(message), counter) + 4, 0);
    const contextWindow = route?.contextWindow ?? EXTRACTIVE_CONTEXT_WINDOW;
    const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? Math.min(1024, Math.floor(contextWindow / 4));
    const targets = { queries, kbs };
    const sources = queries.length > 0 ? await this.retrieve(res, projectId, body, targets, extractive, contextWindow, promptTokens, maxTokens, counter) : [];

    if (extractive) {
      const answer = answerFor(
        queries.length > 0 ? retrievalQuery(body.messages) : '',
        queries.length > 0 ? sources.map(({ index, chunk }) => ({ index, text: chunk.text, title: chunk.title })) : undefined,
      );
      // An answer that found nothing cites nothing; quoted sentences give their own pages.
      const citations = answer.found ? citationsOf(sources, answer.quotes) : [];
      const injectedTokens = sources.reduce((sum, source) => sum + counter.count(source.chunk.text), 0);
      const usage = await respondExtractively(res, {
        content: answer.content,
        n: body.n ?? 1,
        maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
        stream: body.stream === true,
        includeUsage: body.stream_options?.include_usage === true,
        promptTokens: promptTokens + injectedTokens,
        counter,
        extras: queries.length > 0 ? { citations } : {},
        annotate: (content) => annotationsFor(content, citations, filesUrl),
      });
      const ctx = context(res);
      ctx.model = EXTRACTIVE_MODEL;
      ctx.usage = usage;
      return;
    }
    const citations = citationsOf(sources);
    const forwarded = withoutExtensions(body);
    const messages = queries.length > 0 ? injectSources(body.messages, sourcesSystemMessage(sources)) : body.messages;
    await proxyToModel(models, res, '/chat/completions', { ...forwarded, messages }, queries.length > 0 ? citingDecorator(citations, filesUrl) : undefined);
  }

  private async retrieve(
    res: Response,
    projectId: string,
    body: ChatCompletionRequest,
    targets: { queries: KnowledgeBaseQuery[]; kbs: SearchableKnowledgeBase[] },
    extractive: boolean,
    contextWindow: number,
    promptTokens: number,
    maxTokens: number,
    counter: TokenCounter,
  ): Promise<Source[]> {
    const started = performance.now();
    let query = retrievalQuery(body.messages);
    if (body.retrieval?.rewrite_query && !extractive && body.messages.filter((message) => message.role === 'user').length > 1) {
      query = await this.rewrite(res, body, query);
    }
    const options = { query, maxResults: body.retrieval?.max_num_results ?? DEFAULT_MAX_RESULTS, scoreThreshold: body.retrieval?.score_threshold };
    const chunks = await this.deps.retriever.search(projectId, targets.queries, options, targets.kbs);
    res.setHeader('x-cairn-retrieval-ms', String(Math.round(performance.now() - started)));
    return packSources(chunks, sourceBudget(contextWindow, promptTokens, maxTokens), counter);
  }

  /** Asks the same model for a standalone query; on any failure the last question is searched as is. */
  private async rewrite(res: Response, body: ChatCompletionRequest, fallback: string): Promise<string> {
    const transcript = body.messages
      .filter((message) => message.role === 'user' || message.role === 'assistant')
      .map((message) => `${message.role}: ${messageText(message)}`)
      .join('\n');
    const abort = new AbortController();
    const onClientGone = (): void => abort.abort();
    res.once('close', onClientGone);
    try {
      const upstream = await this.deps.models.send({
        model: body.model,
        path: '/chat/completions',
        body: {
          model: body.model,
          messages: [{ role: 'system', content: REWRITE_INSTRUCTIONS }, { role: 'user', content: transcript }],
          max_tokens: 64,
          temperature: 0,
          stream: false,
        },
        requestId: context(res).requestId,
        signal: abort.signal,
      });
      try {
        const completion = (await upstream.body.json()) as { choices?: Array<{ message?: { content?: string } }> };
        const rewritten = completion.choices?.[0]?.message?.content?.trim();
        return rewritten || fallback;
      } finally {
        upstream.release();
      }
    } catch (error) {
      this.deps.logger.warn({ err: error, requestId: context(res).requestId }, 'query rewrite failed; searching the question as asked');
      return fallback;
    } finally {
      res.off('close', onClientGone);
    }
  }
}
