/**
 * BM25 as a sparse vector. Each term gets the BM25 term-frequency weight in the document vector;
 * Qdrant multiplies by the term's IDF at query time (`modifier: "idf"` on the sparse vector), so
 * IDF always reflects the collection as it is now, and the query vector is just the query's terms.
 * Analysis mirrors Lucene's EnglishAnalyzer (lowercase, English stop words, Porter stemmer), and
 * its CJKBigramFilter for Chinese, Japanese and Korean: those scripts have no spaces between words,
 * so a run of Han, Hiragana, Katakana or Hangul becomes its overlapping character bigrams
 * (量子コンピュータ → 量子 子コ コン … ータ), and a word inside a longer run shares its bigrams.
 */
import { stemmer } from 'stemmer';
import { ENGLISH_STOP_WORDS } from './stop-words.ts';

/** Qdrant's sparse vector of BM25 term weights: indices are hashed terms, unique and ascending (Qdrant rejects duplicates). */
export interface SparseVector {
  indices: number[];
  values: number[];
}

export interface Bm25Options {
  /** Term-frequency saturation: how fast repeated occurrences stop adding weight. */
  k1?: number;
  /** Length normalisation: 0 ignores document length, 1 fully normalises by it. */
  b?: number;
  /** Average document length in terms (after stop words), the reference for length normalisation. */
  avgDocLength?: number;
}

/** Lucene's and Anserini's defaults. */
export const DEFAULT_K1 = 1.2;
export const DEFAULT_B = 0.75;
/**
 * Chunk length, in terms after stop words, that counts as "average". Qdrant cannot tell us the
 * collection's real average (it only applies IDF), and stored vectors must share one reference.
 * Auto chunks (400 WordPiece tokens, ~0.49 terms per token) hold ~195 terms when full and ~135–165
 * on average once each document's last, shorter chunk is counted (SciFact; a long report).
 * On SciFact with auto chunks, nDCG@10 is 0.692 / 0.693 / 0.689 for 100 / 150 / 200: it matters little.
 */
export const DEFAULT_AVG_DOC_LENGTH = 150;

/** Letters or digits (any script), then letters, combining marks (Devanagari vowel signs…) and digits. */
const TERM_PATTERN = /[\p{L}\p{N}][\p{L}\p{M}\p{N}]*/gu;
const ASCII_LETTERS = /^[a-z]+$/;
/**
 * A character of a CJK script. Script_Extensions, so that marks shared by Hiragana and Katakana
 * (the prolonged sound mark ー, the voicing marks) stay inside their run, as in Lucene's tokenizer.
 */
const CJK_CHAR = /[\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Hangul}]/u;
/** Splits a term into its CJK runs and the rest (capturing, so `split` keeps the runs). */
const CJK_RUNS = /([\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Hangul}]+)/u;
const NON_ASCII = /[\u0080-\uffff]/;
const STOP_WORD = -1;
const utf8 = new TextEncoder();
/** Bounds the memo (~50 MB at most); it is cleared when full. */
const MAX_MEMOISED_WORDS = 500_000;

export class Bm25Encoder {
  readonly k1: number;
  readonly b: number;
  readonly avgDocLength: number;
  /** Lowercased word → term id, or STOP_WORD: stemming and hashing run once per distinct word. */
  private readonly termIds = new Map<string, number>();
  /**
   * Term id → u32 index, and back. Words with the same stem (or colliding hashes) share an id, so
   * indices come out unique. Counting by small ids uses a typed array, where a Map keyed by u32
   * values would box most keys (V8's small integers are 31-bit) on every occurrence of a term.
   */
  private indexOfTerm: number[] = [];
  private readonly termOfIndex = new Map<number, number>();
  private counts = new Uint32Array(4096);
  /** Term ids seen in the current text, to read and reset `counts` without scanning it. */
  private readonly seen: number[] = [];

  constructor(options: Bm25Options = {}) {
    this.k1 = options.k1 ?? DEFAULT_K1;
    this.b = options.b ?? DEFAULT_B;
    this.avgDocLength = options.avgDocLength ?? DEFAULT_AVG_DOC_LENGTH;
    if (!(this.k1 >= 0) || !Number.isFinite(this.k1)) throw new RangeError(`k1 must be a finite number ≥ 0, got ${this.k1}`);
    if (!(this.b >= 0 && this.b <= 1)) throw new RangeError(`b must be between 0 and 1, got ${this.b}`);
    if (!(this.avgDocLength > 0) || !Number.isFinite(this.avgDocLength)) {
      throw new RangeError(`avgDocLength must be a positive number, got ${this.avgDocLength}`);
    }
  }

  /** A chunk's vector: per term, tf·(k1+1) / (tf + k1·(1 − b + b·docLength/avgDocLength)). */
  encodeDocument(text: string): SparseVector {
    const length = this.countTerms(text);
    return this.collect(this.k1 * (1 - this.b + (this.b * length) / this.avgDocLength));
  }

  /** A query's vector: 1 per distinct term, so a repeated word does not outweigh the others. */
  encodeQuery(text: string): SparseVector {
    this.countTerms(text);
    return this.collect(undefined);
  }

  /** Counts the text's terms into `counts`/`seen`; returns the document length (terms after stop words). */
  private countTerms(text: string): number {
    if (this.termIds.size >= MAX_MEMOISED_WORDS) this.forget(); // only between texts: ids stay valid within one
    let length = 0;
    if (!NON_ASCII.test(text)) {
      // ASCII fast path, the same terms as TERM_PATTERN: runs of [a-z0-9], about twice as fast as the regex.
      const lower = text.toLowerCase();
      let start = -1;
      for (let i = 0; i <= lower.length; i++) {
        const code = i < lower.length ? lower.charCodeAt(i) : 0;
        if ((code >= 0x61 && code <= 0x7a) || (code >= 0x30 && code <= 0x39)) {
          if (start < 0) start = i;
        } else if (start >= 0) {
          length += this.add(lower.slice(start, i));
          start = -1;
        }
      }
      return length;
    }
    // NFKC folds what PDFs are full of: the "ﬁ" ligature, full-width letters and digits.
    const normalised = text.normalize('NFKC').toLowerCase();
    TERM_PATTERN.lastIndex = 0;
    for (let match = TERM_PATTERN.exec(normalised); match; match = TERM_PATTERN.exec(normalised)) {
      length += CJK_CHAR.test(match[0]) ? this.addMixed(match[0]) : this.add(match[0]);
    }
    return length;
  }

  /** A term with CJK characters: each CJK run as bigrams (a lone character as itself), the other parts as words. */
  private addMixed(term: string): number {
    let length = 0;
    for (const part of term.split(CJK_RUNS)) {
      if (part === '') continue;
      if (!CJK_CHAR.test(part)) {
        length += this.add(part);
        continue;
      }
      const chars = Array.from(part); // code points: Han extension B and beyond are surrogate pairs
      if (chars.length === 1) length += this.add(part);
      for (let i = 0; i + 1 < chars.length; i++) length += this.add(chars[i]! + chars[i + 1]!);
    }
    return length;
  }

  /** Counts one word; returns 1, or 0 for a stop word. */
  private add(word: string): number {
    let id = this.termIds.get(word);
    if (id === undefined) {
      id = ENGLISH_STOP_WORDS.has(word) ? STOP_WORD : this.termIdOf(word);
      this.termIds.set(word, id);
    }
    if (id === STOP_WORD) return 0;
    const count = this.counts[id] ?? 0;
    this.counts[id] = count + 1;
    if (count === 0) this.seen.push(id);
    return 1;
  }

  private termIdOf(word: string): number {
    // Porter's rules are English: other scripts (and words with digits) are indexed unstemmed.
    const index = fnv1a32(ASCII_LETTERS.test(word) ? stemmer(word) : word);
    let id = this.termOfIndex.get(index);
    if (id === undefined) {
      id = this.indexOfTerm.length;
      this.indexOfTerm.push(index);
      this.termOfIndex.set(index, id);
      if (id >= this.counts.length) {
        const grown = new Uint32Array(this.counts.length * 2);
        grown.set(this.counts);
        this.counts = grown;
      }
    }
    return id;
  }

  /** The sparse vector of the counted text (BM25 weights, or 1s for a query), resetting the counts. */
  private collect(lengthNorm: number | undefined): SparseVector {
    const sorted = new Float64Array(this.seen.length);
    for (let i = 0; i < sorted.length; i++) sorted[i] = this.indexOfTerm[this.seen[i] ?? 0] ?? 0;
    sorted.sort(); // typed arrays sort numerically
    const indices = new Array<number>(sorted.length);
    const values = new Array<number>(sorted.length);
    for (let i = 0; i < sorted.length; i++) {
      const index = sorted[i] ?? 0;
      const id = this.termOfIndex.get(index) ?? 0;
      const tf = this.counts[id] ?? 0;
      this.counts[id] = 0;
      indices[i] = index;
      values[i] = lengthNorm === undefined ? 1 : (tf * (this.k1 + 1)) / (tf + lengthNorm);
    }
    this.seen.length = 0;
    return { indices, values };
  }

  private forget(): void {
    this.termIds.clear();
    this.termOfIndex.clear();
    this.indexOfTerm = [];
  }
}

/**
 * 32-bit FNV-1a of the term's UTF-8 bytes: the term's index in the sparse vector. Hashing needs no
 * vocabulary, so there is nothing to build, store or keep in sync between the ingestion workers
 * and the API; any process (or another language) maps a term to the same u32. Collisions are rare
 * (a million distinct terms share ~100 indices) and merely merge two rare terms.
 */
export function fnv1a32(term: string): number {
  let hash = 0x811c9dc5;
  for (const byte of utf8.encode(term)) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 0;
}
