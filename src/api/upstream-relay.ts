/**
 * Relays an upstream model server's answer to the client: whole JSON bodies, or SSE streams
 * passed through chunk by chunk. Both put Cairn's model id in `model` and pick out token usage.
 */
import { once } from 'node:events';
import type { Response } from 'express';
import { UpstreamError, UpstreamTimeoutError, errorBody } from '../errors.ts';
import { context } from '../http/context.ts';
import type { ModelRouter, UpstreamResponse } from '../models/model-router.ts';
import { SseParser, sseData } from '../models/sse.ts';

interface UsageFields {
  prompt_tokens?: number;
  completion_tokens?: number;
}

function recordUsage(res: Response, usage: UsageFields | null | undefined): void {
  if (!usage || typeof usage !== 'object') return;
  context(res).usage = { promptTokens: usage.prompt_tokens ?? 0, completionTokens: usage.completion_tokens ?? 0 };
}

/** Lets a caller add to the answer on its way out (grounded chat adds citations and annotations). */
export interface ResponseDecorator {
  completion(body: Record<string, unknown>): void;
  /** Every streamed chunk, in order; `first` is true once. */
  chunk(event: Record<string, unknown>, first: boolean): void;
}

async function relayJson(res: Response, upstream: UpstreamResponse, decorator?: ResponseDecorator): Promise<void> {
  let body: Record<string, unknown>;
  try {
    body = (await upstream.body.json()) as Record<string, unknown>;
  } catch (error) {
    throw new UpstreamError(`Model ${upstream.route.id} answered with a body that is not JSON`, { cause: error });
  } finally {
    upstream.release();
  }
  body.model = upstream.route.id;
  recordUsage(res, body.usage as UsageFields | undefined);
  decorator?.completion(body);
  res.status(upstream.status).setHeader('x-cairn-model', upstream.route.id);
  res.json(body);
}

/** Writes with backpressure; a client that leaves ends the wait instead of hanging it. */
export async function writeEvent(res: Response, text: string): Promise<void> {
  if (res.destroyed) throw new Error('client disconnected');
  if (!res.write(text)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
}

export interface ProxiedBody extends Record<string, unknown> {
  model: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
}

/**
 * Sends a validated request to the model's upstreams and relays the answer. A client that goes
 * away at any point, before or during the answer, aborts the upstream request.
 */
export async function proxyToModel(
  models: ModelRouter,
  res: Response,
  path: string,
  body: ProxiedBody,
  decorator?: ResponseDecorator,
): Promise<void> {
  const upstreamAbort = new AbortController();
  const onClientGone = (): void => {
    if (!res.writableFinished) upstreamAbort.abort();
  };
  res.once('close', onClientGone);
  // The client may have left while Cairn was still retrieving: then nothing is sent upstream.
  if (res.destroyed) {
    res.off('close', onClientGone);
    return;
  }
  try {
    // Usage is always requested so that streamed requests are accounted too; relayStream strips it again.
    const forwarded = body.stream ? { ...body, stream_options: { ...body.stream_options, include_usage: true } } : body;
    const upstream = await models.send({
      model: body.model,
      path,
      body: forwarded,
      requestId: context(res).requestId,
      signal: upstreamAbort.signal,
    });
    context(res).model = upstream.route.id;
    if (body.stream) await relayStream(res, upstream, body.stream_options?.include_usage === true, decorator);
    else await relayJson(res, upstream, decorator);
  } finally {
    res.off('close', onClientGone);
  }
}

function streamFailure(error: unknown, modelId: string) {
  const code = (error as { code?: string }).code;
  const failure =
    code === 'UND_ERR_BODY_TIMEOUT'
      ? new UpstreamTimeoutError(`Model ${modelId} stopped sending in the middle of the stream`)
      : new UpstreamError(`The stream from model ${modelId} was interrupted${code ? ` (${code})` : ''}`);
  return errorBody(failure);
}

/** `clientWantsUsage`: the client asked for `stream_options.include_usage`; if not, the usage chunk is stripped. */
async function relayStream(
  res: Response,
  upstream: UpstreamResponse,
  clientWantsUsage: boolean,
  decorator?: ResponseDecorator,
): Promise<void> {
  const modelId = upstream.route.id;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-cairn-model': modelId,
  });
  res.flushHeaders();

  const parser = new SseParser();
  let sawDone = false;
  let first = true;
  const send = (text: string): Promise<void> => writeEvent(res, text);
  try {
    for await (const chunk of upstream.body) {
      for (const payload of parser.push(chunk as Buffer)) {
        if (payload === '[DONE]') {
          sawDone = true;
          await send(sseData('[DONE]'));
          continue;
        }
        let event: Record<string, unknown>;
        try {
          event = JSON.parse(payload) as Record<string, unknown>;
        } catch {
          await send(sseData(payload));
          continue;
        }
        if ('usage' in event) {
          recordUsage(res, event.usage as UsageFields | null);
          if (!clientWantsUsage) {
            // The usage-only chunk exists because Cairn asked for it; the client did not.
            if (Array.isArray(event.choices) && event.choices.length === 0) continue;
            delete event.usage;
          }
        }
        if ('model' in event) event.model = modelId;
        decorator?.chunk(event, first);
        first = false;
        await send(sseData(event));
      }
    }
    if (!sawDone) await send(sseData(errorBody(new UpstreamError(`The stream from model ${modelId} ended before [DONE]`))));
  } catch (error) {
    if (res.destroyed) return; // the client left; the upstream request has been aborted
    await send(sseData(streamFailure(error, modelId))).catch(() => undefined);
  } finally {
    upstream.release();
    if (!res.destroyed) res.end();
  }
}
