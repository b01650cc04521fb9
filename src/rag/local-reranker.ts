/**
 * A cross-encoder reranker run in-process with transformers.js (ONNX Runtime, CPU): each
 * (query, text) pair goes through the model together, which judges relevance far better than
 * comparing two independent embeddings. Loaded on first use, like the local embedder.
 *
 * Score = sigmoid(logit) for single-logit models (ms-marco MiniLM, bge-reranker), and
 * sigmoid(logit₁ − logit₀) — the softmax probability of label 1, "relevant" — for two-label ones.
 * Sigmoid keeps the order of the raw logits and puts every provider on the same [0, 1] scale.
 */
import path from 'node:path';
import { AutoModelForSequenceClassification, AutoTokenizer, Tensor } from '@huggingface/transformers';
import type { PreTrainedModel, PreTrainedTokenizer } from '@huggingface/transformers';
import { LocalModelUnavailableError } from '../embeddings/errors.ts';
import { classifyLoadFailure, type LoadFailure } from '../embeddings/model-load-failure.ts';
import type { EmbedderLogger, LocalDtype } from '../embeddings/local-embedder.ts';
import { LocalModelHost, maxInputTokensOf, type ProgressCallback } from '../embeddings/local-model-host.ts';
import type { Reranker } from './reranker.ts';

export type RerankerLogger = EmbedderLogger;

export interface LocalRerankerOptions {
  id: string;
  /** Hub id, a directory name under modelsDir, or an absolute directory. */
  source: string;
  dtype: LocalDtype;
  maxBatchSize: number;
  modelsDir?: string;
  cacheDir?: string;
  allowDownload: boolean;
  logger?: RerankerLogger;
}

/** The weights of the local rerank model are neither in CAIRN_MODELS_DIR nor downloadable (or fail to load). */
export class RerankModelUnavailableError extends LocalModelUnavailableError {
  constructor(modelId: string, source: string, failure: LoadFailure, options: { cause?: unknown } = {}) {
    super('rerank', modelId, source, failure, options);
  }
}

type LoadedModel = { tokenizer: PreTrainedTokenizer; model: PreTrainedModel; maxInputTokens: number };

const sigmoid = (logit: number): number => 1 / (1 + Math.exp(-logit));

type Encoded = Record<'input_ids' | 'attention_mask' | 'token_type_ids', number[] | undefined>;

/** Where the query's and the text's tokens start in `ids`, whatever special tokens the template adds around them. */
function locate(ids: number[], query: number[], text: number[]): { q: number; t: number } | undefined {
  const at = (part: number[], start: number): boolean => part.every((id, offset) => ids[start + offset] === id);
  const specials = ids.length - query.length - text.length;
  for (let q = 0; q <= specials; q += 1) {
    if (!at(query, q)) continue;
    for (let t = q + query.length; t <= specials + query.length; t += 1) if (at(text, t)) return { q, t };
  }
  return undefined;
}

/**
 * Tokenises (query, text) with the model's own pair template, then truncates "longest first" as
 * Python's tokenizers do: transformers.js would cut the row's tail, dropping the final separator
 * and, behind a long query, the whole text.
 */
function encodePair(tokenizer: PreTrainedTokenizer, query: string, text: string, maxLength: number): Encoded {
  const full = tokenizer(query, { text_pair: text, return_tensor: false }) as unknown as Encoded;
  const ids = full.input_ids ?? [];
  const excess = ids.length - maxLength;
  if (excess <= 0) return full;
  const queryIds = tokenizer.encode(query, { add_special_tokens: false });
  const textIds = tokenizer.encode(text, { add_special_tokens: false });
  const found = locate(ids, queryIds, textIds);
  const fromLonger = Math.min(excess, Math.abs(textIds.length - queryIds.length));
  let keepQuery = queryIds.length - (queryIds.length > textIds.length ? fromLonger : 0);
  let keepText = textIds.length - (queryIds.length > textIds.length ? 0 : fromLonger);
  keepText -= Math.ceil((excess - fromLonger) / 2);
  keepQuery -= Math.floor((excess - fromLonger) / 2);
  const cut = (values: number[] | undefined): number[] | undefined => {
    // Unlocatable segments or a limit shorter than the template: plain tail truncation.
    if (!values || !found || keepQuery < 0 || keepText < 0) return values?.slice(0, maxLength);
    const { q, t } = found;
    return [...values.slice(0, q + keepQuery), ...values.slice(q + queryIds.length, t + keepText), ...values.slice(t + textIds.length)];
  };
  return { input_ids: cut(full.input_ids), attention_mask: cut(full.attention_mask), token_type_ids: cut(full.token_type_ids) };
}

/** One padded int64 tensor per input the tokenizer produced (token_type_ids only for BERT-style templates). */
function encodePairs(tokenizer: PreTrainedTokenizer, query: string, texts: string[], maxLength: number): Record<string, Tensor> {
  const rows = texts.map((text) => encodePair(tokenizer, query, text, maxLength));
  const width = Math.max(...rows.map((row) => row.input_ids?.length ?? 0));
  const tensors: Record<string, Tensor> = {};
  for (const key of ['input_ids', 'attention_mask', 'token_type_ids'] as const) {
    if (rows.some((row) => !row[key])) continue;
    const pad = BigInt(key === 'input_ids' ? (tokenizer.pad_token_id ?? 0) : 0);
    const data = new BigInt64Array(rows.length * width).fill(pad);
    rows.forEach((row, index) => data.set(row[key]!.map(BigInt), index * width)); // right padding, as encoders are trained
    tensors[key] = new Tensor('int64', data, [rows.length, width]);
  }
  return tensors;
}

export class LocalCrossEncoderReranker implements Reranker {
  readonly id: string;
  private readonly host: LocalModelHost<LoadedModel>;

  constructor(private readonly options: LocalRerankerOptions) {
    const { id, source, maxBatchSize, modelsDir, cacheDir, allowDownload, logger } = options;
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) throw new RangeError(`Rerank model ${id}: maxBatchSize must be a positive integer`);
    this.id = id;
    this.host = new LocalModelHost({ id, source, modelsDir, cacheDir, allowDownload, logger, label: 'rerank model' }, (progress) =>
      this.loadModel(progress),
    );
  }

  async rerank(query: string, texts: string[], signal?: AbortSignal): Promise<number[]> {
    if (this.host.closed) throw new Error(`Rerank model ${this.id} is closed`);
    signal?.throwIfAborted();
    if (texts.length === 0) return [];
    const loaded = await this.host.load();
    return this.host.serially(async () => {
      if (this.host.closed) throw new Error(`Rerank model ${this.id} is closed`);
      const scores: number[] = [];
      for (let start = 0; start < texts.length; start += this.options.maxBatchSize) {
        signal?.throwIfAborted();
        scores.push(...(await this.scoreBatch(loaded, query, texts.slice(start, start + this.options.maxBatchSize))));
      }
      return scores;
    });
  }

  /** Waits for running batches, then disposes the session. */
  close(): Promise<void> {
    return this.host.close();
  }

  /** Runs under the process-wide load lock, with the library's `env` already set for this model's files. */
  private async loadModel(progress_callback: ProgressCallback): Promise<LoadedModel> {
    const { id, source, dtype, modelsDir, logger } = this.options;
    const started = performance.now();
    let tokenizer: PreTrainedTokenizer;
    let model: PreTrainedModel;
    try {
      tokenizer = await AutoTokenizer.from_pretrained(source, { progress_callback });
      model = await AutoModelForSequenceClassification.from_pretrained(source, { dtype, progress_callback });
    } catch (error) {
      throw new RerankModelUnavailableError(id, source, classifyLoadFailure(error, { modelsDir: modelsDir && path.resolve(modelsDir) }), { cause: error });
    }

    const maxInputTokens = maxInputTokensOf(tokenizer, model);
    logger?.info({ model: id, source, dtype, maxInputTokens, ms: Math.round(performance.now() - started) }, 'rerank model loaded');
    return { tokenizer, model, maxInputTokens };
  }

  private async scoreBatch(loaded: LoadedModel, query: string, texts: string[]): Promise<number[]> {
    const inputs = encodePairs(loaded.tokenizer, query, texts, loaded.maxInputTokens);
    const outputs = (await loaded.model(inputs)) as Record<string, Tensor | undefined>;
    let logits = outputs.logits;
    if (!logits) throw new Error(`Rerank model ${this.id} has no logits output`);
    if (logits.type !== 'float32') logits = logits.to('float32');
    const [rows = 0, labels = 0] = logits.dims;
    const data = logits.data as Float32Array;
    if (rows !== texts.length || (labels !== 1 && labels !== 2)) {
      throw new Error(
        `Rerank model ${this.id} returned logits of shape [${logits.dims.join(', ')}]; a cross-encoder gives one ` +
          'relevance logit, or two (not relevant, relevant), per pair',
      );
    }
    return Array.from({ length: rows }, (_, row) =>
      labels === 1 ? sigmoid(data[row]!) : sigmoid(data[row * 2 + 1]! - data[row * 2]!),
    );
  }
}
