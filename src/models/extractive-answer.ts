/**
 * The `extractive` chat model: answers from retrieved passages alone, with no weights. It quotes
 * the sentences that best match the question, each followed by `[n]` (its source's number), or
 * says plainly that nothing relevant was found. Pure and deterministic.
 *
 * Sources are untrusted text: they are only ever split into sentences, scored against the
 * question and quoted verbatim, never interpreted. A sentence saying "ignore previous
 * instructions" is quoted only if it matches the question, and then only as a quote.
 *
 * Scoring: each distinct question term (analysed like BM25 retrieval: NFKC, lowercase, Lucene's
 * stop words, Porter stems for ASCII words) weighs 1 + ln((N + 1) / (df + 1)) over the N
 * sentences of all sources (smoothed IDF: a rarer term weighs more, but a term that every
 * sentence contains still weighs 1, since it is still part of the question). A sentence scores
 * the weight of the question terms it contains over the question's total weight, so one that
 * contains them all scores 1. Terms absent from every sentence keep the highest weight: an answer
 * that leaves out most of what was asked is not an answer.
 */
import { stemmer } from 'stemmer';
import { ENGLISH_STOP_WORDS } from '../vectors/stop-words.ts';
import { DEFAULT_MAX_SENTENCE_CHARS, sentenceSpans } from './sentences.ts';

export interface ExtractiveSource {
  /** The source's number, as cited: `[index]`. */
  index: number;
  text: string;
  filename?: string;
  /** The section heading the text falls under (a chunk's title): a line repeating it is not quoted. */
  title?: string;
}

/** Where a quoted sentence came from: its source's number and its offset in that source's text. */
export interface Quote {
  source: number;
  start: number;
}

export interface ExtractiveAnswer {
  content: string;
  /** Distinct source numbers quoted in `content`, ascending. */
  cited: number[];
  /** The quoted sentences, in the order `content` quotes them. */
  quotes: Quote[];
  found: boolean;
}

export interface ExtractiveOptions {
  /** At most this many sentences are quoted (default 3). */
  maxSentences?: number;
  /** Share of the question's term weight the best sentence must match to answer (default 0.35). */
  minRelevance?: number;
}

export const NOT_FOUND_ANSWER = 'I could not find an answer to that in the knowledge bases.';
/** For the caller to send when a request to `extractive` names no knowledge bases (no sources to search). */
export const NO_KNOWLEDGE_BASE_ANSWER =
  'The extractive model answers only from knowledge bases, and this request did not name any. ' +
  'Pass `knowledge_bases` with the ids of the knowledge bases to search, and it will quote the passages that answer the question.';

export const DEFAULT_MAX_QUOTED_SENTENCES = 3;
/**
 * 0.35 of the question's term weight: one of two content terms, two of three or four, or one
 * term much rarer than the rest. Retrieval already chose these passages for the question, so the
 * bar has to turn away sentences that share one incidental word with a longer question, while
 * keeping partial, paraphrased matches ("Can I get a refund for a used item?" → "Refunds are only
 * available for unused items.", 0.39). 0.5 would also refuse those; 0.3 quotes the shipping time.
 */
export const DEFAULT_MIN_RELEVANCE = 0.35;
/** A quoted sentence must score at least this share of the best one: no weak filler after a strong answer. */
const RELATIVE_TO_BEST = 0.5;
/** Bounds the work: sentences considered across all sources, and the question's length. */
const MAX_SENTENCES = 2_000;
const MAX_QUESTION_CHARS = 4_000;
/** Fewer words than this is a heading, label or fragment ("Refund policy"): it answers nothing on its own. */
const MIN_WORDS = 3;

/** BM25's term pattern: letters or digits (any script), then letters, combining marks and digits. */
const TERM_PATTERN = /[\p{L}\p{N}][\p{L}\p{M}\p{N}]*/gu;
const ASCII_LETTERS = /^[a-z]+$/;
/**
 * Words that frame a question rather than say what it is about. BM25 keeps them (Lucene's short
 * list; IDF over a whole collection discounts them), but IDF over a few dozen retrieved sentences
 * cannot, and "What do you know about X?" must match sentences about X, not ones that say "you".
 */
const QUESTION_WORDS: ReadonlySet<string> = new Set([
  'what', 'which', 'who', 'whom', 'whose', 'when', 'where', 'why', 'how', 'whats',
  'do', 'does', 'did', 'doing', 'done', 'can', 'could', 'would', 'should', 'shall', 'may', 'might', 'must',
  'am', 'were', 'been', 'being', 'have', 'has', 'had', 'having',
  'i', 'me', 'my', 'we', 'us', 'our', 'you', 'your', 'he', 'him', 'his', 'she', 'her', 'its', 'them',
  'please', 'tell', 'explain', 'describe', 'know', 'about', 'any', 'some', 'here', 'much', 'many',
  // "How long does X take", "Can I get X", "Do I need X": the frame, not the topic.
  'long', 'take', 'takes', 'get', 'need',
]);

interface Candidate {
  source: number;
  /** Order across all sources, as given: the last tie-break. */
  order: number;
  text: string;
  /** Offset of the sentence in its source's text. */
  start: number;
  /** Ids of the question terms the sentence contains. */
  matched: number[];
  score: number;
}

export function extractiveAnswer(question: string, sources: ExtractiveSource[], options: ExtractiveOptions = {}): ExtractiveAnswer {
  const maxQuoted = Number.isFinite(options.maxSentences) ? Math.max(1, Math.floor(options.maxSentences as number)) : DEFAULT_MAX_QUOTED_SENTENCES;
  const minRelevance = Number.isFinite(options.minRelevance) ? (options.minRelevance as number) : DEFAULT_MIN_RELEVANCE;
  const analyse = analyser();
  const questionTerms = new Map<string, number>(); // stem → id
  for (const word of words(question.slice(0, MAX_QUESTION_CHARS))) {
    if (QUESTION_WORDS.has(word)) continue;
    const term = analyse(word);
    if (term !== undefined && !questionTerms.has(term)) questionTerms.set(term, questionTerms.size);
  }
  if (questionTerms.size === 0) return notFound();

  const candidates: Candidate[] = [];
  const df = new Array<number>(questionTerms.size).fill(0);
  let considered = 0; // split sentences, the work bound
  let sentenceCount = 0; // quotable ones, the N of the IDF
  for (const source of sources) {
    const budget = MAX_SENTENCES - considered;
    if (budget <= 0) break;
    const sentences = sentenceSpans(source.text, { maxSentences: budget, maxChars: DEFAULT_MAX_SENTENCE_CHARS, heading: source.title });
    considered += sentences.length;
    for (const { text, start } of sentences) {
      const sentenceWords = words(text);
      if (sentenceWords.length < MIN_WORDS) continue;
      sentenceCount++;
      const matched = new Set<number>();
      for (const word of sentenceWords) {
        const term = analyse(word);
        const id = term === undefined ? undefined : questionTerms.get(term);
        if (id !== undefined) matched.add(id);
      }
      for (const id of matched) df[id] = (df[id] ?? 0) + 1;
      const order = candidates.length;
      if (matched.size > 0) candidates.push({ source: source.index, order, text, start, matched: [...matched].sort((a, b) => a - b), score: 0 });
    }
  }

  const weights = df.map((count) => 1 + Math.log((sentenceCount + 1) / (count + 1)));
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  for (const candidate of candidates) {
    // Summed in id order, so sentences matching the same terms score exactly the same (a true tie).
    candidate.score = candidate.matched.reduce((sum, id) => sum + (weights[id] ?? 0), 0) / total;
  }
  candidates.sort((a, b) => b.score - a.score || a.source - b.source || a.order - b.order);
  const best = candidates[0];
  if (!best || best.score < minRelevance) return notFound();

  const floor = Math.max(minRelevance, best.score * RELATIVE_TO_BEST);
  const chosen: Candidate[] = [];
  const seen = new Set<string>();
  for (const candidate of candidates) {
    if (chosen.length >= maxQuoted || candidate.score < floor) break;
    const key = words(candidate.text).join(' '); // the same sentence in overlapping chunks, or repeated
    if (seen.has(key)) continue;
    seen.add(key);
    chosen.push(candidate);
  }
  // Read in document order: by source, then position, rather than by score.
  chosen.sort((a, b) => a.source - b.source || a.order - b.order);
  return {
    content: chosen.map((candidate) => `${candidate.text} [${candidate.source}]`).join(' '),
    cited: [...new Set(chosen.map((candidate) => candidate.source))].sort((a, b) => a - b),
    quotes: chosen.map((candidate) => ({ source: candidate.source, start: candidate.start })),
    found: true,
  };
}

function notFound(): ExtractiveAnswer {
  return { content: NOT_FOUND_ANSWER, cited: [], quotes: [], found: false };
}

/** The text's words, lowercased after NFKC (which folds ligatures and full-width forms), as BM25 reads them. */
function words(text: string): string[] {
  return text.normalize('NFKC').toLowerCase().match(TERM_PATTERN) ?? [];
}

/** Word → term (undefined for a stop word), memoised for one answer: stemming dominates the cost. */
function analyser(): (word: string) => string | undefined {
  const memo = new Map<string, string | undefined>();
  return (word) => {
    if (memo.has(word)) return memo.get(word);
    // Porter's rules are English: other scripts (and words with digits) stay unstemmed, as in BM25.
    const term = ENGLISH_STOP_WORDS.has(word) ? undefined : ASCII_LETTERS.test(word) ? stemmer(word) : word;
    memo.set(word, term);
    return term;
  };
}
