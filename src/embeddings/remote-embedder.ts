/**
 * Embeddings from an OpenAI-compatible `/v1/embeddings` upstream (TEI, vLLM, Infinity…).
 * Large inputs are split into batches, sent with bounded concurrency, and reassembled in order.
 */
import { Agent, request } from 'undici';
import { z } from 'zod';
import type { Embedder, EmbeddingBatch } from './embedder.ts';
import { EmbeddingUpstreamError } from './errors.ts';
import { redactApiKey, upstreamMessage } from './upstream-messages.ts';

export interface RemoteEmbedderOptions {
  id: string;
  /** Base URL including the version prefix, e.g. `http://tei:8080/v1`. */
  baseUrl: string;
  /** Model name the upstream expects; defaults to `id`. */
  model?: string;
  apiKey?: string;
  dimensions?: number;
  maxBatchSize: number;
  maxConcurrency: number;
  /** The upstream does not say how much it reads; 512 is what BERT-family servers accept. */
  maxInputTokens?: number;
}

const DEFAULT_MAX_INPUT_TOKENS = 512;

const embeddingsResponseSchema = z.object({
  data: z.array(z.object({ index: z.number().int().min(0).optional(), embedding: z.array(z.number()) })),
  usage: z.object({ prompt_tokens: z.number().optional() }).optional(),
});

export class RemoteEmbedder implements Embedder {
  readonly id: string;
  private readonly url: URL;
  private readonly agent: Agent;
  private learnedDimensions: number | undefined;
  private probing: Promise<number> | undefined;

  constructor(private readonly options: RemoteEmbedderOptions) {
    for (const setting of ['maxBatchSize', 'maxConcurrency'] as const) {
      if (!Number.isInteger(options[setting]) || options[setting] < 1) {
        throw new RangeError(`Embedding model ${options.id}: ${setting} must be a positive integer`);
      }
    }
    this.id = options.id;
    this.url = new URL('embeddings', options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
    // Own connection pool, so close() releases exactly this upstream's sockets.
    this.agent = new Agent({ connections: options.maxConcurrency });
  }

  async dimensions(): Promise<number> {
    if (this.options.dimensions) return this.options.dimensions;
    if (this.learnedDimensions) return this.learnedDimensions;
    this.probing ??= this.embed(['dimension probe']).then(
      () => this.learnedDimensions ?? 0,
      (error: unknown) => {
        this.probing = undefined;
        throw error;
      },
    );
    return this.probing;
  }

  async maxInputTokens(): Promise<number> {
    return this.options.maxInputTokens ?? DEFAULT_MAX_INPUT_TOKENS;
  }

  async embed(texts: string[], signal?: AbortSignal): Promise<EmbeddingBatch> {
    signal?.throwIfAborted();
    const { maxBatchSize, maxConcurrency } = this.options;
    const batches: string[][] = [];
    for (let start = 0; start < texts.length; start += maxBatchSize) batches.push(texts.slice(start, start + maxBatchSize));
    const results: EmbeddingBatch[] = new Array<EmbeddingBatch>(batches.length);

    // One failed batch cancels the ones still in flight; so does the caller's signal.
    const cancel = new AbortController();
    const forwardAbort = (): void => cancel.abort(signal?.reason);
    signal?.addEventListener('abort', forwardAbort, { once: true });
    let nextBatch = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        cancel.signal.throwIfAborted();
        const index = nextBatch++;
        const batch = batches[index];
        if (!batch) return;
        results[index] = await this.postBatch(batch, cancel.signal);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(maxConcurrency, batches.length) }, worker));
    } catch (error) {
      cancel.abort(error);
      throw error;
    } finally {
      signal?.removeEventListener('abort', forwardAbort);
    }
    return {
      vectors: results.flatMap((result) => result.vectors),
      promptTokens: results.reduce((sum, result) => sum + result.promptTokens, 0),
    };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private async postBatch(texts: string[], signal: AbortSignal): Promise<EmbeddingBatch> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    const body = JSON.stringify({ model: this.options.model ?? this.id, input: texts, encoding_format: 'float' });

    let response: Awaited<ReturnType<typeof request>>;
    try {
      response = await request(this.url, { method: 'POST', headers, body, signal, dispatcher: this.agent });
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      throw this.failure(`could not be reached: ${(error as Error).message}`, undefined, error);
    }

    if (response.statusCode < 200 || response.statusCode >= 300) {
      const text = await response.body.text().catch(() => '');
      throw this.failure(`answered HTTP ${response.statusCode}: ${upstreamMessage(text)}`, response.statusCode);
    }
    let payload: unknown;
    try {
      payload = await response.body.json();
    } catch (error) {
      throw this.failure('answered with invalid JSON', response.statusCode, error);
    }
    const parsed = embeddingsResponseSchema.safeParse(payload);
    if (!parsed.success) throw this.failure('answered without a valid `data` array of embeddings', response.statusCode);
    return { vectors: this.orderedVectors(parsed.data.data, texts.length), promptTokens: parsed.data.usage?.prompt_tokens ?? 0 };
  }

  /** Puts vectors in input order (servers may answer out of order) and checks their count and length. */
  private orderedVectors(data: Array<{ index?: number | undefined; embedding: number[] }>, expected: number): Float32Array[] {
    if (data.length !== expected) throw this.failure(`returned ${data.length} embeddings for ${expected} inputs`, 200);
    const vectors = new Array<Float32Array>(expected);
    data.forEach((item, position) => {
      const index = item.index ?? position;
      if (index >= expected || vectors[index]) throw this.failure(`returned an invalid embedding index ${index}`, 200);
      vectors[index] = Float32Array.from(item.embedding);
    });
    const width = this.options.dimensions ?? this.learnedDimensions ?? vectors[0]?.length;
    const wrong = vectors.find((vector) => vector.length !== width || vector.length === 0);
    if (wrong) {
      const expectedWidth = this.options.dimensions ? `${width} (configured dimensions)` : `${width}`;
      throw this.failure(`returned a vector of length ${wrong.length}, expected ${expectedWidth}`, 200);
    }
    this.learnedDimensions ??= width;
    return vectors;
  }

  /** Errors name the model and host, never the api key (an upstream may echo request headers back). */
  private failure(detail: string, status: number | undefined, cause?: unknown): EmbeddingUpstreamError {
    const message = `Embedding upstream for model "${this.id}" (${this.url.host}) ${detail}`;
    return new EmbeddingUpstreamError(redactApiKey(message, this.options.apiKey), status, { cause });
  }
}
