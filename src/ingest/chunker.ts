/**
 * Token-aware chunking. A document is cut into "atoms" (whitespace-separated words; a word too
 * big for one chunk is hard-cut), each tagged with the strength of the boundary before it:
 * paragraph > sentence > line > word > hard cut. Chunks are packed greedily up to maxTokens, then
 * ended at the strongest boundary that keeps at least half of that size — the recursive
 * paragraphs → sentences → words split, in one linear pass. Consecutive sections with the same
 * title (the pages of a PDF, the records of a CSV) are packed together; a new title starts a new chunk.
 */
import type { Chunk, DocumentSection, PageBreak, ParsedDocument } from './document.ts';
import { splitByTokens, type TokenCounter } from './token-counter.ts';

export {
  AUTO_MAX_TOKENS,
  AUTO_OVERLAP_RATIO,
  EMBEDDER_RESERVED_TOKENS,
  InvalidChunkingStrategyError,
  resolveChunking,
  STATIC_MAX_TOKENS,
  STATIC_MIN_TOKENS,
  type ChunkingStrategy,
} from './chunking-strategy.ts';

export interface ChunkingOptions {
  maxTokens: number;
  /** The next chunk starts with up to this many trailing tokens of the previous one (whole words). */
  overlapTokens: number;
}

const HARD_CUT = 0;
const WORD = 1;
const LINE = 2;
const SENTENCE = 3;
const PARAGRAPH = 4;

/** A chunk ends at its strongest boundary among those keeping at least this share of the greedy size. */
const MIN_FILL = 0.5;
/**
 * Chunks are also bounded in characters: a 100-char run without spaces is one [UNK] token for
 * WordPiece, so a 20 MB line would otherwise be a "1-token" chunk. English averages ~4.5
 * chars per token; only degenerate text gets near 16.
 */
export const MAX_CHARS_PER_TOKEN = 16;

/** Sections joined as Chunk offsets count them. */
export const SECTION_SEPARATOR = '\n\n';

/** A word: non-space characters, ended after CJK sentence punctuation (CJK text has no spaces). */
const WORD_PATTERN = /[^\s。！？]+[。！？]*|[。！？]+/gu;
/** "e.g. the" or "approx. five" does not start a sentence. */
const LOWERCASE = /\p{Ll}/u;

export function chunkDocument(doc: ParsedDocument, options: ChunkingOptions, counter: TokenCounter): Chunk[] {
  const chunks: Chunk[] = [];
  const chunker = new SectionChunker(options, counter, (chunk) => chunks.push(chunk));
  for (const section of doc.sections) chunker.add(section);
  chunker.end();
  return chunks;
}

function checkOptions({ maxTokens, overlapTokens }: ChunkingOptions): void {
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RangeError(`maxTokens must be a positive integer, got ${maxTokens}`);
  if (!Number.isInteger(overlapTokens) || overlapTokens < 0 || overlapTokens >= maxTokens) {
    throw new RangeError(`overlapTokens must be an integer in [0, maxTokens), got ${overlapTokens}`);
  }
}

/** Atoms dropped from the front of the window once this many are behind the chunk being built. */
const COMPACT_AFTER_ATOMS = 4096;

/**
 * `chunkDocument` one section at a time: chunks go to `emit` as soon as no later section can change them, so
 * a 100 MB document needs memory for a window of about one chunk (plus the current section), not for the
 * joined text and an atom per word of the whole file. Same output as chunking the whole document at once:
 * a packing step runs only once the atoms ahead of it overflow one chunk, which is all a step ever reads.
 */
export class SectionChunker {
  private readonly maxTokens: number;
  private readonly overlapTokens: number;
  private readonly maxChars: number;
  /** Retained sections (from the one holding the chunk being built), their index and start in the joined text. */
  private sections: DocumentSection[] = [];
  private sectionStarts: number[] = [];
  private firstSection = 0;
  private nextStart = 0;
  private runTitle: string | undefined;
  private runOpen = false;
  private chunkCount = 0;
  // Parallel arrays over the window's atoms: [start, end) in the joined text, boundary before, section index.
  private starts: number[] = [];
  private ends: number[] = [];
  private boundaries: number[] = [];
  private sectionOf: number[] = [];
  /** prefix[i] = tokens of atoms 0..i-1 (plus a constant), so the tokens of any span cost O(1). */
  private prefix: number[] = [0];
  private first = 0; // first atom of the chunk being built (overlap included)
  private fresh = 0; // first atom no earlier chunk contains

  constructor(
    options: ChunkingOptions,
    private readonly counter: TokenCounter,
    private readonly emitChunk: (chunk: Chunk) => void,
  ) {
    checkOptions(options);
    this.maxTokens = options.maxTokens;
    this.overlapTokens = options.overlapTokens;
    this.maxChars = options.maxTokens * MAX_CHARS_PER_TOKEN;
  }

  /** Chunks emitted so far. */
  get count(): number {
    return this.chunkCount;
  }

  /** The next section of the document. Consecutive sections with the same title are packed together. */
  add(section: DocumentSection): void {
    if (this.runOpen && section.title !== this.runTitle) this.endRun();
    this.runOpen = true;
    this.runTitle = section.title;
    const index = this.firstSection + this.sections.length;
    const start = this.nextStart;
    this.sections.push(section);
    this.sectionStarts.push(start);
    this.nextStart = start + section.text.length + SECTION_SEPARATOR.length;
    this.collectAtoms(index, section.text, start);
  }

  /** The document is complete: emit what is left. */
  end(): void {
    if (this.runOpen) this.endRun();
    this.runOpen = false;
  }

  private section(index: number): DocumentSection | undefined {
    return this.sections[index - this.firstSection];
  }

  private sectionStart(index: number): number {
    return this.sectionStarts[index - this.firstSection] ?? 0;
  }

  private endRun(): void {
    while (this.fresh < this.starts.length) this.step(true);
    this.starts = [];
    this.ends = [];
    this.boundaries = [];
    this.sectionOf = [];
    this.prefix = [0];
    this.first = 0;
    this.fresh = 0;
    // The next run starts a new chunk: only its sections are needed from now on.
    this.firstSection += this.sections.length;
    this.sections = [];
    this.sectionStarts = [];
  }

  private collectAtoms(section: number, text: string, base: number): void {
    WORD_PATTERN.lastIndex = 0;
    for (let match = WORD_PATTERN.exec(text); match; match = WORD_PATTERN.exec(text)) {
      const start = match.index;
      const end = start + match[0].length;
      const boundary = this.boundaryBefore(text, start, base, section);
      const count = end - start > this.maxChars ? this.maxTokens + 1 : this.counter.count(match[0]);
      if (count <= this.maxTokens) {
        this.pushAtom(base + start, base + end, count, boundary, section);
      } else {
        let pieceBoundary = boundary;
        for (const piece of splitByTokens(this.counter, text, start, end, this.maxTokens, this.maxChars)) {
          this.pushAtom(base + piece.start, base + piece.end, piece.tokens, pieceBoundary, section);
          pieceBoundary = HARD_CUT;
        }
      }
      // Each step emits a chunk, so this runs a bounded number of times per atom pushed.
      while (this.step(false));
    }
  }

  private pushAtom(start: number, end: number, count: number, boundary: number, section: number): void {
    this.starts.push(start);
    this.ends.push(end);
    this.prefix.push((this.prefix[this.prefix.length - 1] ?? 0) + count);
    this.boundaries.push(boundary);
    this.sectionOf.push(section);
  }

  /** Boundary before the atom at `start` (section-local) of `text`, the section starting at `base`. */
  private boundaryBefore(text: string, start: number, base: number, section: number): number {
    const previous = this.ends.length - 1;
    if (previous < 0 || this.sectionOf[previous] !== section) return PARAGRAPH;
    const previousEnd = (this.ends[previous] ?? 0) - base;
    let newlines = 0;
    for (let i = previousEnd; i < start; i++) if (text.charCodeAt(i) === 0x0a) newlines++;
    if (newlines >= 2) return PARAGRAPH;
    const sentenceEnd = endsSentence(text, previousEnd) && !LOWERCASE.test(text[start] ?? '');
    return sentenceEnd ? SENTENCE : newlines === 1 ? LINE : WORD;
  }

  private span(from: number, to: number): number {
    return (this.prefix[to] ?? 0) - (this.prefix[from] ?? 0);
  }

  private fits(from: number, to: number): boolean {
    return this.span(from, to) <= this.maxTokens && (this.ends[to - 1] ?? 0) - (this.starts[from] ?? 0) <= this.maxChars;
  }

  /**
   * One chunk of the greedy packing. Unless `final`, it runs only when the atoms collected so far overflow a
   * chunk from `first`, so that later atoms cannot change where it ends. Returns whether it emitted a chunk.
   */
  private step(final: boolean): boolean {
    const atoms = this.starts.length;
    if (this.fresh >= atoms) return false;
    let first = this.first;
    const fresh = this.fresh;
    while (first < fresh && !this.fits(first, fresh + 1)) first++;
    this.first = first;
    if (!final && this.fits(first, atoms)) return false;

    let end = fresh + 1; // the overlap was trimmed so that atom `fresh` fits
    while (end < atoms && this.fits(first, end + 1)) end++;
    let cut = end < atoms ? this.strongestBreak(first, fresh, end) : end;
    // Sums of word counts estimate the chunk; the counter has the last word (a tokenizer need not be additive).
    let tokenCount = this.counter.count(this.slice(first, cut));
    while (tokenCount > this.maxTokens && cut - first > 1) {
      if (cut - 1 > fresh) cut--;
      else first++;
      tokenCount = this.counter.count(this.slice(first, cut));
    }
    this.emit(first, cut, tokenCount);
    this.fresh = cut;
    this.first = this.overlapStart(first, cut);
    if (this.first > COMPACT_AFTER_ATOMS && this.first * 2 > atoms) this.compact();
    return true;
  }

  /** Drops the atoms before `first` and the sections before the first atom's. */
  private compact(): void {
    // The last atom stays: the boundary before the next one depends on it.
    const drop = Math.min(this.first, this.starts.length - 1);
    this.starts.splice(0, drop);
    this.ends.splice(0, drop);
    this.boundaries.splice(0, drop);
    this.sectionOf.splice(0, drop);
    this.prefix.splice(0, drop);
    this.first -= drop;
    this.fresh -= drop;
    const keepFrom = (this.sectionOf[0] ?? this.firstSection + this.sections.length - 1) - this.firstSection;
    if (keepFrom > 0) {
      this.sections.splice(0, keepFrom);
      this.sectionStarts.splice(0, keepFrom);
      this.firstSection += keepFrom;
    }
  }

  /** Where to end a full chunk [first, end): the strongest boundary (latest on ties) keeping MIN_FILL of it. */
  private strongestBreak(first: number, fresh: number, end: number): number {
    const minTokens = this.span(first, end) * MIN_FILL;
    let best = end;
    for (let cut = end; cut > fresh && this.span(first, cut) >= minTokens; cut--) {
      if ((this.boundaries[cut] ?? 0) > (this.boundaries[best] ?? 0)) best = cut;
      if (this.boundaries[best] === PARAGRAPH) break;
    }
    return best;
  }

  /** Where the next chunk starts: the strongest boundary (earliest on ties) whose tail has overlapTokens / 2 to overlapTokens tokens. */
  private overlapStart(first: number, cut: number): number {
    let best = cut;
    let widest = cut;
    for (let start = cut - 1; start > first && this.span(start, cut) <= this.overlapTokens; start--) {
      widest = start;
      if (this.span(start, cut) * 2 >= this.overlapTokens && (best === cut || (this.boundaries[start] ?? 0) >= (this.boundaries[best] ?? 0))) {
        best = start;
      }
    }
    return best === cut ? widest : best;
  }

  /** The joined text [starts[first], ends[cut - 1]), sections joined with SECTION_SEPARATOR. */
  private slice(first: number, cut: number): string {
    const from = this.starts[first] ?? 0;
    const to = this.ends[cut - 1] ?? 0;
    const firstSection = this.sectionOf[first] ?? 0;
    const lastSection = this.sectionOf[cut - 1] ?? 0;
    const local = (index: number): string => this.section(index)?.text ?? '';
    if (firstSection === lastSection) return local(firstSection).slice(from - this.sectionStart(firstSection), to - this.sectionStart(firstSection));
    const parts = [local(firstSection).slice(from - this.sectionStart(firstSection))];
    for (let index = firstSection + 1; index < lastSection; index++) parts.push(local(index));
    parts.push(local(lastSection).slice(0, to - this.sectionStart(lastSection)));
    return parts.join(SECTION_SEPARATOR);
  }

  private emit(first: number, cut: number, tokenCount: number): void {
    const chunk: Chunk = {
      index: this.chunkCount++,
      text: this.slice(first, cut),
      charStart: this.starts[first] ?? 0,
      charEnd: this.ends[cut - 1] ?? 0,
      tokenCount,
    };
    let pageStart: number | undefined;
    let pageEnd: number | undefined;
    const pageBreaks: PageBreak[] = [];
    for (let section = this.sectionOf[first] ?? 0; section <= (this.sectionOf[cut - 1] ?? 0); section++) {
      const page = this.section(section)?.page;
      if (page === undefined) continue;
      pageStart = Math.min(pageStart ?? page, page);
      pageEnd = Math.max(pageEnd ?? page, page);
      if (pageBreaks.at(-1)?.page !== page) pageBreaks.push({ char: this.sectionStart(section), page });
    }
    if (pageStart !== undefined) chunk.pageStart = pageStart;
    if (pageEnd !== undefined) chunk.pageEnd = pageEnd;
    if (pageBreaks.length > 0) chunk.pageBreaks = pageBreaks;
    const title = this.section(this.sectionOf[first] ?? 0)?.title;
    if (title !== undefined) chunk.title = title;
    this.emitChunk(chunk);
  }
}

/** Whether the word ending at `end` ends a sentence: . ! ? … (CJK too), then optional closing quotes/brackets. */
function endsSentence(text: string, end: number): boolean {
  let i = end - 1;
  while (i >= 0 && '"\')]”’»'.includes(text[i] ?? '')) i--;
  return i >= 0 && '.!?…。！？'.includes(text[i] ?? ' ');
}
