/** The embeddings port: turns texts into vectors. Local (transformers.js) and remote (OpenAI-compatible) adapters implement it. */
export interface EmbeddingBatch {
  vectors: Float32Array[];
  /** Tokens the model read, for usage accounting. */
  promptTokens: number;
}

export interface Embedder {
  /** The public model id (what clients pass as `model`). */
  readonly id: string;
  /** Vector length. Loads the model if needed. */
  dimensions(): Promise<number>;
  /** Longest input, in tokens, the model reads before truncating (used later to size chunks). */
  maxInputTokens(): Promise<number>;
  embed(texts: string[], signal?: AbortSignal): Promise<EmbeddingBatch>;
  /** Why the model cannot serve right now (its last load failed), if it is known not to. */
  unavailable?(): Error | undefined;
  close(): Promise<void>;
}
