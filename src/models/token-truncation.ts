/**
 * Cutting an answer to `max_tokens`, as a model that ran out of tokens would stop: after the last
 * whole word that fits, or inside the first word when not even that one fits.
 */
import { splitByTokens, type TokenCounter } from '../ingest/token-counter.ts';

export interface Truncated {
  text: string;
  /** Whether anything was cut: the completion's finish_reason is then "length". */
  truncated: boolean;
}

export function truncateToTokens(text: string, maxTokens: number, counter: TokenCounter): Truncated {
  if (counter.count(text) <= maxTokens) return { text, truncated: false };
  const wordEnds = [...text.matchAll(/\S+/g)].map((match) => match.index + match[0].length);
  // Binary search over whole-word prefixes: a longer prefix of whole words never has fewer tokens.
  let low = 0; // words known to fit
  let high = wordEnds.length; // words known not to fit
  while (high - low > 1) {
    const middle = (low + high) >> 1;
    if (counter.count(text.slice(0, wordEnds[middle - 1])) <= maxTokens) low = middle;
    else high = middle;
  }
  if (low > 0) return { text: text.slice(0, wordEnds[low - 1]), truncated: true };
  const firstWord = text.trimStart();
  const [piece] = splitByTokens(counter, firstWord, 0, wordEnds[0] === undefined ? 0 : firstWord.search(/\s|$/), maxTokens, firstWord.length);
  return { text: piece ? firstWord.slice(0, piece.end) : '', truncated: true };
}
