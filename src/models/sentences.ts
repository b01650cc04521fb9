/**
 * Sentence splitting for the `extractive` model, which quotes retrieved passages sentence by
 * sentence. Deliberately simple rules, in two steps:
 *
 * 1. Blocks. A blank line ends a block, and so does a line that starts a list item ("- ", "* ",
 *    "• ", "1. ", "2) ", "a) "); the marker itself is dropped. Headings are dropped too, since they
 *    label a section and are no answer to quote: Markdown's "# Refunds", a setext heading (the line
 *    above "===" or "---"), a line that is all bold or italics ("**Refunds**"), and a line reading
 *    exactly the section's heading (`heading`: HTML and DOCX sections start with it). Rules ("---",
 *    "***") separate blocks. Any other line break is a wrapped line (PDF text is full of them) and
 *    reads as a space, so a sentence that spans lines stays whole; a plain-text heading line that is
 *    none of the above is therefore still read as the start of the next sentence.
 * 2. Sentences. Within a block, `.`, `!`, `?` or `…` (with any closing quotes or brackets) followed
 *    by a space ends a sentence, unless the next word starts with a lowercase letter ("3.5 p.m. on
 *    Monday", "e.g. the"), the word before a `.` is a known abbreviation ("Dr.", "e.g.", "vs."),
 *    an abbreviation that precedes a number and does here ("No. 5", "Fig. 2", "Jan. 3"), or a
 *    single capital letter (the initial in "J. Smith"). Decimals ("3.5") and dotted acronyms
 *    ("U.S.") never have a space after their inner dots, so they never split. `。！？` always end.
 *
 * Each sentence comes with its offset in the original text (`sentenceSpans`), so a quote can be
 * placed on its PDF page.
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
const WHITESPACE = /\s/;
/** A Markdown rule (---, ***, ===, ___) or a similar separator line. */
const RULE = /^[-=_*~+•—–\s]{2,}$/;
/** Setext heading underline: the line above is a heading. */
const SETEXT_UNDERLINE = /^(?:=+|-+)$/;
/** A whole line in bold or italics ("**Returns**", "__Note:__"): a heading in all but name. */
const EMPHASIS_LINE = /^(\*\*|__|\*|_)(?=\S)(.+?)\1$/;

export interface SplitOptions {
  /** Stop after this many sentences (default 2,000). */
  maxSentences?: number;
  /** Cut longer sentences at spaces into pieces of at most this many characters (default 500). */
  maxChars?: number;
  /** The section's heading (a chunk's title): a line that reads exactly this labels the text and is dropped. */
  heading?: string;
}

/** A sentence as quoted (whitespace collapsed) and where it starts in the text it came from. */
export interface SentenceSpan {
  text: string;
  /** Offset in the original text of the sentence's first character. */
  start: number;
}

export const DEFAULT_MAX_SENTENCES = 2_000;
export const DEFAULT_MAX_SENTENCE_CHARS = 500;

export function splitSentences(text: string, options: SplitOptions = {}): string[] {
  return sentenceSpans(text, options).map((sentence) => sentence.text);
}

export function sentenceSpans(text: string, options: SplitOptions = {}): SentenceSpan[] {
  const limit = Math.max(1, Math.floor(options.maxSentences ?? DEFAULT_MAX_SENTENCES));
  const maxChars = Math.max(20, Math.floor(options.maxChars ?? DEFAULT_MAX_SENTENCE_CHARS));
  const heading = options.heading === undefined ? undefined : collapse(options.heading);
  const out: SentenceSpan[] = [];
  let block: Line[] = [];
  const flush = (): void => {
    if (block.length > 0 && out.length < limit) splitBlock(joinLines(block), out, limit, maxChars);
    block = [];
  };
  const bounded = text.length > limit * maxChars * 2 ? text.slice(0, limit * maxChars * 2) : text;
  let offset = 0; // of the current raw line in `text`
  for (const raw of bounded.split('\n')) {
    const lineStart = offset;
    offset += raw.length + 1;
    if (out.length >= limit) break;
    const line = raw.trim();
    const start = lineStart + (raw.length - raw.trimStart().length);
    if (line === '') {
      flush();
      continue;
    }
    if (isHeading(line, heading)) {
      flush();
      continue;
    }
    if (RULE.test(line)) {
      // A setext underline makes the one line above it a heading; any other rule just separates.
      if (SETEXT_UNDERLINE.test(line) && block.length === 1) block = [];
      flush();
      continue;
    }
    const marker = LINE_MARKER.exec(line);
    if (!marker) {
      block.push({ text: line, start });
      continue;
    }
    flush();
    if (!marker[0].startsWith('#')) block.push({ text: line.slice(marker[0].length), start: start + marker[0].length });
  }
  flush();
  return out;
}

interface Line {
  text: string;
  start: number;
}

/** A block's lines joined by spaces, whitespace runs collapsed, with each character's offset in the original text. */
interface Block {
  text: string;
  origin: number[];
}

function joinLines(lines: Line[]): Block {
  // Characters collected in an array and joined once: asking a growing string what it ends with
  // flattens it each time, which made a 1 MB block take minutes.
  const chars: string[] = [];
  const origin: number[] = [];
  let lastWasSpace = false;
  for (const line of lines) {
    if (chars.length > 0 && !lastWasSpace) {
      chars.push(' ');
      origin.push(line.start);
      lastWasSpace = true;
    }
    for (let i = 0; i < line.text.length; i++) {
      const c = line.text[i] ?? '';
      const space = WHITESPACE.test(c);
      if (space && lastWasSpace) continue;
      chars.push(space ? ' ' : c);
      origin.push(line.start + i);
      lastWasSpace = space;
    }
  }
  return { text: chars.join(''), origin };
}

/** A label rather than a sentence: the section's own heading, or a line that is all emphasis ("**Returns**"). */
function isHeading(line: string, heading: string | undefined): boolean {
  if (heading !== undefined && heading !== '' && collapse(line) === heading) return true;
  const emphasis = EMPHASIS_LINE.exec(line);
  return emphasis !== null && !TERMINALS.has((emphasis[2] ?? '').trimEnd().slice(-1));
}

function collapse(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** Splits one block (line breaks already spaces) into sentences, appending to `out`. */
function splitBlock(block: Block, out: SentenceSpan[], limit: number, maxChars: number): void {
  const s = block.text;
  const emit = (from: number, to: number): void => push(s, from, to, block.origin, out, limit, maxChars);
  let start = 0;
  for (let i = 0; i < s.length && out.length < limit; i++) {
    const c = s[i] ?? '';
    if (CJK_TERMINALS.has(c)) {
      emit(start, i + 1);
      start = i + 1;
      continue;
    }
    if (!TERMINALS.has(c)) continue;
    let end = i + 1; // past the run of terminators and closing quotes/brackets
    while (end < s.length && (TERMINALS.has(s[end] ?? '') || CLOSERS.has(s[end] ?? ''))) end++;
    if (s[end] === ' ' && endsSentence(s, i, s[end + 1] ?? '')) {
      emit(start, end);
      start = end + 1;
    }
    i = end - 1;
  }
  if (start < s.length) emit(start, s.length);
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

/** Appends the sentence s[from, to), cutting one longer than `maxChars` at spaces (or hard, if it has none). */
function push(s: string, from: number, to: number, origin: number[], out: SentenceSpan[], limit: number, maxChars: number): void {
  while (from < to && s[from] === ' ') from++;
  while (to > from && s[to - 1] === ' ') to--;
  while (from < to && out.length < limit) {
    if (to - from <= maxChars) {
      out.push({ text: s.slice(from, to), start: origin[from] ?? 0 });
      return;
    }
    const space = s.lastIndexOf(' ', from + maxChars);
    let cut = space > from + maxChars / 2 ? space : from + maxChars;
    if (LOW_SURROGATE.test(s[cut] ?? '')) cut--; // never cut an emoji (or other astral character) in half
    let pieceEnd = cut;
    while (pieceEnd > from && s[pieceEnd - 1] === ' ') pieceEnd--;
    out.push({ text: s.slice(from, pieceEnd), start: origin[from] ?? 0 });
    from = cut;
    while (from < to && s[from] === ' ') from++;
  }
}
