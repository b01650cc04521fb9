/**
 * `dimensions` on /v1/embeddings: Matryoshka-trained models (nomic, bge-m3, gte, OpenAI's v3…)
 * keep most of their quality in a vector's leading components, so a shorter embedding is the
 * prefix, re-normalised to unit length so cosine and dot product still agree.
 */
import type { EmbeddingModelConfig } from '../config.ts';
import { InvalidRequestError } from '../errors.ts';

/** 'any' size up to the model's own, a list of allowed sizes, or none (the model is not trained for it). */
export type TruncationPolicy = 'any' | readonly number[] | undefined;

export function truncationPolicyOf(config: EmbeddingModelConfig): TruncationPolicy {
  if (config.matryoshka) return 'any';
  return config.provider === 'local' ? config.dimensions : undefined;
}

/** L2-normalised prefix of each vector. */
export function truncateEmbeddings(vectors: Float32Array[], size: number): Float32Array[] {
  return vectors.map((vector) => {
    const prefix = vector.slice(0, size);
    let sumOfSquares = 0;
    for (const value of prefix) sumOfSquares += value * value;
    const norm = Math.sqrt(sumOfSquares);
    if (norm > 0) for (let i = 0; i < prefix.length; i++) prefix[i]! /= norm;
    return prefix;
  });
}

/** Returns the vectors at the requested size, or throws the 400 that says which sizes the model offers. */
export function resizeEmbeddings(vectors: Float32Array[], requested: number | undefined, policy: TruncationPolicy, model: string): Float32Array[] {
  const native = vectors[0]?.length ?? 0;
  if (requested === undefined || requested === native) return vectors;
  const allowed = policy === 'any' ? requested < native : (policy?.includes(requested) ?? false) && requested < native;
  if (!allowed) {
    const offer =
      policy === 'any'
        ? `any size up to ${native}`
        : policy
          ? `${[...policy.filter((size) => size < native), native].join(', ')}`
          : `only ${native} (the model config does not mark it as truncatable: \`dimensions: [...]\` or \`matryoshka: true\`)`;
    throw new InvalidRequestError(`The model '${model}' produces ${native}-dimensional embeddings; \`dimensions\` can be ${offer}.`, {
      param: 'dimensions',
    });
  }
  return truncateEmbeddings(vectors, requested);
}
