/**
 * Token counting for chunk sizing. Chunks are measured in the tokens an embedding model reads, so
 * that a chunk of `maxTokens` fits the model's input; lexical-only knowledge bases use the same
 * WordPiece tokenizer (shipped in `assets/tokenizer/`) so their chunks have comparable sizes.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoTokenizer } from '@huggingface/transformers';
import type { PreTrainedTokenizer } from '@huggingface/transformers';

/**
 * What the chunker needs from a tokenizer. Counting is the only primitive: the chunker cuts an
 * over-long word by searching prefix lengths with `count`, which works for any tokenizer, whereas
 * char offsets of tokens are not exposed by transformers.js and are distorted by normalisation
 * (lowercasing, accent stripping, removed control characters).
 */
export interface TokenCounter {
  /** Tokens in `text`, without special tokens ([CLS], [SEP]): what the text costs inside a model input. */
  count(text: string): number;
}

/** Words are memoised up to this length; longer strings (URLs, base64, giant lines) rarely repeat. */
const MAX_MEMOISED_WORD_CHARS = 64;
/** Bounds the memo (~15 MB); it is cleared when full, and frequent words come back at once (Zipf). */
const MAX_MEMOISED_WORDS = 200_000;

/** How `count` treats a character. */
const WORD_CHARACTER = 0;
const SEPARATOR = 1;
/** Always one token: counted without a tokenizer call, and it ends the word before it. */
const SINGLE_TOKEN = 2;
const SEPARATORS = ' \t\n\r';
const ASCII_PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@\\^_`{|}~'; // not [ ]: special tokens are spelled [MASK]
/** CJK ideographs (BMP blocks), which BERT surrounds with spaces: one token each. */
const isIdeograph = (code: number): boolean =>
  (code >= 0x4e00 && code <= 0x9fff) || (code >= 0x3400 && code <= 0x4dbf) || (code >= 0xf900 && code <= 0xfaff);
const ASCII_ALPHANUMERIC = /^[A-Za-z0-9]+$/;
/** Words on which the direct WordPiece must agree with the tokenizer before it is used. */
const WORDPIECE_PROBES = ['hello', 'Unaffable', 'tokenization', 'COVID19', 'x9Qz7Kp2Lm', 'a'.repeat(100), 'B'.repeat(101)];

interface WordPieceVocabulary {
  /** Every prefix of every piece (continuation pieces with their "##"): true if it is a piece itself. */
  prefixes: Map<string, boolean>;
  prefix: string;
  maxWordChars: number;
  lowercase: boolean;
}

/**
 * Counts with a BERT WordPiece tokenizer, fast. transformers.js manages ~1.5 MB/s on a whole text,
 * and its WordPiece is quadratic in a word's length (330 µs for 32 random letters), so:
 * - BERT's pre-tokenizer splits on whitespace and makes every punctuation mark and CJK ideograph a
 *   token, so count("cells, and") = count("cells") + 1 + count("and"): words are counted one by one
 *   through a memo (ingestion text repeats the same words);
 * - an ASCII alphanumeric word is split by a direct greedy WordPiece over the vocabulary, linear in
 *   its length, and one longer than max_input_chars_per_word is a single [UNK] (20 MB lines of hex).
 * Every shortcut is checked against the tokenizer when it loads and dropped where it disagrees, so
 * another tokenizer is still counted exactly, only slower. Only space, tab, CR and LF separate
 * words: some other "spaces" (U+FEFF) are deleted by BERT and join their neighbours.
 */
export class WordPieceTokenCounter implements TokenCounter {
  private readonly memo = new Map<string, number>();
  /** ASCII code → WORD_CHARACTER | SEPARATOR | SINGLE_TOKEN, as verified for this tokenizer. */
  private readonly kinds = new Uint8Array(128);
  private ideographKind = WORD_CHARACTER;
  private readonly wordPiece: WordPieceVocabulary | undefined;

  private constructor(private readonly tokenizer: PreTrainedTokenizer) {
    const isSingleToken = (mark: string): boolean => this.encodedLength(mark) === 1 && this.encodedLength(`a${mark}b`) === 3;
    if ([...SEPARATORS].every((space) => this.encodedLength(`a${space}b`) === 2)) {
      for (const space of SEPARATORS) this.kinds[space.charCodeAt(0)] = SEPARATOR;
      for (const mark of ASCII_PUNCTUATION) if (isSingleToken(mark)) this.kinds[mark.charCodeAt(0)] = SINGLE_TOKEN;
      if (['\u4e2d', '\u3400', '\uf900'].every(isSingleToken)) this.ideographKind = SINGLE_TOKEN;
    }
    const wordPiece = readWordPiece(tokenizer);
    const agrees = wordPiece && WORDPIECE_PROBES.every((word) => wordPieceLength(wordPiece, word) === this.encodedLength(word));
    this.wordPiece = agrees ? wordPiece : undefined;
  }

  /** The shortcuts this tokenizer passed at load (all of them for BERT WordPiece): for logs and tests. */
  get shortcuts(): { words: boolean; punctuation: boolean; ideographs: boolean; wordPiece: boolean } {
    return {
      words: this.kinds[0x20] === SEPARATOR,
      punctuation: [...ASCII_PUNCTUATION].every((mark) => this.kinds[mark.charCodeAt(0)] === SINGLE_TOKEN),
      ideographs: this.ideographKind === SINGLE_TOKEN,
      wordPiece: this.wordPiece !== undefined,
    };
  }

  /** Loads the tokenizer files (`tokenizer.json`, `tokenizer_config.json`) from a directory; no network. */
  static async load(directory: string = defaultTokenizerDirectory()): Promise<WordPieceTokenCounter> {
    // An absolute path: transformers.js reads it as-is, without consulting the global
    // `env.localModelPath` that the local models (embedder, reranker) change while they load.
    const tokenizer = await AutoTokenizer.from_pretrained(path.resolve(directory), { local_files_only: true });
    return new WordPieceTokenCounter(tokenizer);
  }

  count(text: string): number {
    let total = 0;
    let wordStart = -1;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      const kind = code < 128 ? (this.kinds[code] ?? WORD_CHARACTER) : isIdeograph(code) ? this.ideographKind : WORD_CHARACTER;
      if (kind === WORD_CHARACTER) {
        if (wordStart < 0) wordStart = i;
        continue;
      }
      if (wordStart >= 0) total += this.countWord(text.slice(wordStart, i));
      wordStart = -1;
      if (kind === SINGLE_TOKEN) total++;
    }
    if (wordStart >= 0) total += this.countWord(wordStart === 0 ? text : text.slice(wordStart));
    return total;
  }

  private countWord(word: string): number {
    if (word.length > MAX_MEMOISED_WORD_CHARS) return this.countUnmemoised(word);
    let tokens = this.memo.get(word);
    if (tokens === undefined) {
      tokens = this.countUnmemoised(word);
      if (this.memo.size >= MAX_MEMOISED_WORDS) this.memo.clear();
      this.memo.set(word, tokens);
    }
    return tokens;
  }

  private countUnmemoised(word: string): number {
    return this.wordPiece && ASCII_ALPHANUMERIC.test(word) ? wordPieceLength(this.wordPiece, word) : this.encodedLength(word);
  }

  private encodedLength(text: string): number {
    return this.tokenizer.encode(text, { add_special_tokens: false }).length;
  }
}

/** The vocabulary of a WordPiece model, or undefined for another kind of tokenizer. */
function readWordPiece(tokenizer: PreTrainedTokenizer): WordPieceVocabulary | undefined {
  const model = tokenizer.model as unknown as { tokens_to_ids?: unknown; max_input_chars_per_word?: unknown; config?: { continuing_subword_prefix?: unknown } };
  const normalizer = tokenizer.normalizer as unknown as { config?: { lowercase?: unknown } } | null;
  const prefix = model.config?.continuing_subword_prefix ?? '##';
  if (!(model.tokens_to_ids instanceof Map) || typeof model.max_input_chars_per_word !== 'number' || typeof prefix !== 'string') return undefined;
  const prefixes = new Map<string, boolean>();
  for (const piece of (model.tokens_to_ids as Map<string, number>).keys()) {
    const head = piece.startsWith(prefix) ? prefix.length : 0;
    for (let end = head + 1; end < piece.length; end++) {
      const start = piece.slice(0, end);
      if (!prefixes.has(start)) prefixes.set(start, false);
    }
    prefixes.set(piece, true);
  }
  return { prefixes, prefix, maxWordChars: model.max_input_chars_per_word, lowercase: normalizer?.config?.lowercase === true };
}

/**
 * BERT's greedy longest-match-first WordPiece. Walking forward while the text is still a prefix of
 * some piece finds the same longest piece as transformers.js's shrink-from-the-end loop, in a few
 * lookups per token instead of one per character of the remaining word.
 */
function wordPieceLength({ prefixes, prefix, maxWordChars, lowercase }: WordPieceVocabulary, word: string): number {
  if (word.length > maxWordChars) return 1; // [UNK]
  const text = lowercase ? word.toLowerCase() : word;
  let tokens = 0;
  for (let start = 0; start < text.length; tokens++) {
    const head = start === 0 ? '' : prefix;
    let end = start;
    for (let stop = start + 1; stop <= text.length; stop++) {
      const isPiece = prefixes.get(head + text.slice(start, stop));
      if (isPiece === undefined) break;
      if (isPiece) end = stop;
    }
    if (end === start) return 1; // a part outside the vocabulary makes the whole word [UNK]
    start = end;
  }
  return tokens;
}

/**
 * `assets/tokenizer` of the Cairn package, found by walking up from this module: it is
 * `src/ingest/` when run with tsx and `dist/src/ingest/` after tsc, so no fixed `../..` works for both.
 */
export function defaultTokenizerDirectory(): string {
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let directory = start; ; directory = path.dirname(directory)) {
    const candidate = path.join(directory, 'assets', 'tokenizer');
    if (existsSync(path.join(candidate, 'tokenizer.json'))) return candidate;
    if (path.dirname(directory) === directory) {
      throw new Error(`assets/tokenizer/tokenizer.json not found in ${start} or any directory above it`);
    }
  }
}

/** A slice [start, end) of a text, with its token count. */
export interface TextPiece {
  start: number;
  end: number;
  tokens: number;
}

/** A piece this close to maxTokens (15/16) is good enough: searching further costs more counts. */
const GOOD_ENOUGH_FILL = 15 / 16;
const MAX_PROBES = 8;

/**
 * Cuts `text[start, end)` — typically one whitespace-free "word" too big for a chunk, such as a
 * minified file or a base64 line — into consecutive pieces of at most `maxTokens` tokens and
 * `maxChars` characters. Each piece is found by interpolating on token density: a few counts of
 * about the piece's own length, starting from the previous piece's length. A 20 MB line thus
 * costs a small multiple of counting it once; a binary search over the whole line would be quadratic.
 */
export function splitByTokens(
  counter: TokenCounter,
  text: string,
  start: number,
  end: number,
  maxTokens: number,
  maxChars: number,
): TextPiece[] {
  const pieces: TextPiece[] = [];
  let guess = maxTokens; // a token is rarely shorter than one character
  for (let position = start; position < end; ) {
    const piece = longestFittingPrefix(counter, text, position, Math.min(end - position, maxChars), maxTokens, guess);
    pieces.push(piece);
    guess = piece.end - piece.start;
    position = piece.end;
  }
  return pieces;
}

function longestFittingPrefix(
  counter: TokenCounter,
  text: string,
  position: number,
  limit: number,
  maxTokens: number,
  guess: number,
): TextPiece {
  let fitting = 0; // longest length known to fit
  let fittingTokens = 0;
  let overflowing = limit + 1; // shortest length known not to fit
  let length = Math.max(1, Math.min(guess, limit));
  for (let probe = 0; probe < MAX_PROBES; probe++) {
    length = keepSurrogatePairs(text, position, length, limit);
    const tokens = counter.count(text.slice(position, position + length));
    if (tokens <= maxTokens) {
      fitting = length;
      fittingTokens = tokens;
      if (length >= limit || tokens >= maxTokens * GOOD_ENOUGH_FILL) break;
    } else {
      overflowing = length;
    }
    if (overflowing - fitting <= 1) break;
    const proportional = tokens > 0 ? Math.floor((length * maxTokens) / tokens) : length * 2;
    length = Math.min(overflowing - 1, Math.max(fitting + 1, proportional));
  }
  // Every probe overflowed (pathological density): halve until a prefix fits; one character always ends the search.
  while (fitting === 0) {
    length = keepSurrogatePairs(text, position, Math.max(1, length >> 1), limit);
    const tokens = counter.count(text.slice(position, position + length));
    if (tokens <= maxTokens || length <= 2) {
      fitting = length;
      fittingTokens = tokens;
    }
  }
  return { start: position, end: position + fitting, tokens: fittingTokens };
}

/** Never end a piece between the two halves of a surrogate pair (an emoji, a rare CJK character). */
function keepSurrogatePairs(text: string, position: number, length: number, limit: number): number {
  const last = text.charCodeAt(position + length - 1);
  if (last < 0xd800 || last > 0xdbff) return length;
  return length > 1 ? length - 1 : Math.min(length + 1, limit);
}
