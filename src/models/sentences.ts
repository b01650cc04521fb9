/**
 * Sentence splitting for the `extractive` model, which quotes retrieved passages sentence by
 * sentence. Deliberately simple rules, in two steps:
 *
 * 1. Blocks. A blank line ends a block, and so does a line that starts a list item ("- ", "* ",
 *    "• ", "1. ", "2) ", "a) "); the marker itself is dropped. Markdown headings ("# Refunds") are
 *    dropped too: they label a section and are no answer to quote. Any other line break is a
 *    wrapped line (PDF text is full of them) and reads as a space, so a sentence that spans lines
 *    stays whole; a plain-text heading line is therefore read as the start of the next sentence.
 * 2. Sentences. Within a block, `.`, `!`, `?` or `…` (with any closing quotes or brackets) followed
 *    by a space ends a sentence, unless the next word starts with a lowercase letter ("3.5 p.m. on
 *    Monday", "e.g. the"), the word before a `.` is a known abbreviation ("Dr.", "e.g.", "vs."),
 *    an abbreviation that precedes a number and does here ("No. 5", "Fig. 2", "Jan. 3"), or a
 *    single capital letter (the initial in "J. Smith"). Decimals ("3.5") and dotted acronyms
 *    ("U.S.") never have a space after their inner dots, so they never split. `。！？` always end.
 *
 * Work is linear in the text (a hand-written scan: regexes over runs of dots backtrack
 * quadratically) and bounded: at most `maxSentences` sentences, each at most `maxChars` long (a
 * longer one is cut at spaces into pieces), and only the first maxSentences × maxChars × 2
 * characters of the text are read.
 */

/** Never end a sentence: titles and Latin abbreviations that are followed by more of it. */
const ABBREVIATIONS = new Set([
  'mr', 'mrs', 'ms', 'dr', 'prof', 'sr', 'jr', 'st', 'mt', 'rev', 'gen', 'gov', 'sen', 'rep',
  'vs', 'e.g', 'i.e', 'cf', 'al', 'approx', 'ca', 'viz', 'resp',
]);
/** End a sentence unless a number follows: "No. 5", "Fig. 2", "pp. 10", "Jan. 3". */
const BEFORE_NUMBER = new Set([
  'no', 'nos', 'fig', 'figs', 'vol', 'p', 'pp', 'ch', 'sec', 'eq', 'eqs', 'ref', 'art', 'tab',
  'jan', 'feb', 'mar', 'apr', 'jun', 'jul', 'aug', 'sep', 'sept', 'oct', 'nov', 'dec',
]);
const LINE_MARKER = /^(?:[-*+•‣◦▪]|\d{1,3}[.)]|[a-zA-Z]\)|#{1,6})[ \t]+/;
const TERMINALS = new Set(['.', '!', '?', '…']);
const CLOSERS = new Set(['"', "'", '”', '’', '»', ')', ']']);
const CJK_TERMINALS = new Set(['。', '！', '？']);
const LOWERCASE = /\p{Ll}/u;
const CAPITAL_LETTER = /^\p{Lu}$/u;
const DIGIT = /[0-9]/;
const LEADING_PUNCTUATION = /^[^\p{L}\p{N}]+/u;
const LOW_SURROGATE = /[\uDC00-\uDFFF]/;

export interface SplitOptions {
  /** Stop after this many sentences (default 2,000). */
  maxSentences?: number;
  /** Cut longer sentences at spaces into pieces of at most this many characters (default 500). */
  maxChars?: number;
}

export const DEFAULT_MAX_SENTENCES = 2_000;
export const DEFAULT_MAX_SENTENCE_CHARS = 500;

export function splitSentences(text: string, options: SplitOptions = {}): string[] {
  const limit = Math.max(1, Math.floor(options.maxSentences ?? DEFAULT_MAX_SENTENCES));
  const maxChars = Math.max(20, Math.floor(options.maxChars ?? DEFAULT_MAX_SENTENCE_CHARS));
  const out: string[] = [];
  let block: string[] = [];
  const flush = (): void => {
    if (block.length > 0 && out.length < limit) splitBlock(block.join(' '), out, limit, maxChars);
    block = [];
  };
  const bounded = text.length > limit * maxChars * 2 ? text.slice(0, limit * maxChars * 2) : text;
  for (const raw of bounded.split('\n')) {
    if (out.length >= limit) break;
    const line = raw.trim();
    if (line === '') {
      flush();
      continue;
    }
    const marker = LINE_MARKER.exec(line);
    if (!marker) {
      block.push(line);
      continue;
    }
    flush();
    if (!marker[0].startsWith('#')) block.push(line.slice(marker[0].length));
  }
  flush();
  return out;
}

/** Splits one block (line breaks already spaces) into sentences, appending to `out`. */
function splitBlock(raw: string, out: string[], limit: number, maxChars: number): void {
  const s = raw.replace(/\s+/g, ' ').trim();
  let start = 0;
  for (let i = 0; i < s.length && out.length < limit; i++) {
    const c = s[i] ?? '';
    if (CJK_TERMINALS.has(c)) {
      push(s.slice(start, i + 1), out, limit, maxChars);
      start = i + 1;
      continue;
    }
    if (!TERMINALS.has(c)) continue;
    let end = i + 1; // past the run of terminators and closing quotes/brackets
    while (end < s.length && (TERMINALS.has(s[end] ?? '') || CLOSERS.has(s[end] ?? ''))) end++;
    if (s[end] === ' ' && endsSentence(s, i, s[end + 1] ?? '')) {
      push(s.slice(start, end), out, limit, maxChars);
      start = end + 1;
    }
    i = end - 1;
  }
  if (start < s.length) push(s.slice(start), out, limit, maxChars);
}

/** Whether the terminator at `i`, followed by a space and then `next`, ends a sentence. */
function endsSentence(s: string, i: number, next: string): boolean {
  if (LOWERCASE.test(next)) return false;
  if (s[i] !== '.') return true; // "!", "?", "…"
  let from = i;
  while (from > 0 && s[from - 1] !== ' ' && i - from < 40) from--;
  const word = s.slice(from, i).replace(LEADING_PUNCTUATION, '');
  const lower = word.toLowerCase();
  if (ABBREVIATIONS.has(lower)) return false;
  if (BEFORE_NUMBER.has(lower) && DIGIT.test(next)) return false;
  return !CAPITAL_LETTER.test(word);
}

/** Appends a sentence, cutting one longer than `maxChars` at spaces (or hard, if it has none). */
function push(sentence: string, out: string[], limit: number, maxChars: number): void {
  let rest = sentence.trim();
  while (rest.length > 0 && out.length < limit) {
    if (rest.length <= maxChars) {
      out.push(rest);
      return;
    }
    const space = rest.lastIndexOf(' ', maxChars);
    let cut = space > maxChars / 2 ? space : maxChars;
    if (LOW_SURROGATE.test(rest[cut] ?? '')) cut--; // never cut an emoji (or other astral character) in half
    out.push(rest.slice(0, cut).trim());
    rest = rest.slice(cut).trim();
  }
}
