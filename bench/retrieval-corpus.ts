/**
 * Synthetic documents for bench/retrieval.ts, made of real text: paragraphs of consecutive
 * sentences cut from the abstracts of the BEIR SciFact corpus, shuffled into new documents, so
 * that term frequencies, co-occurrences and chunk lengths look like real (scientific) text while a
 * 100k-chunk knowledge base needs ~20× more text than SciFact has.
 *
 * Each document: a title line (an abstract's title), then paragraphs; each paragraph is a run of
 * 3–8 consecutive sentences of a randomly drawn abstract, starting at a random sentence. Document
 * lengths are drawn between 300 and 12,000 words, so they chunk into 1 to ~50 chunks. Everything is
 * seeded: the same seed gives the same knowledge base.
 */
import { readFileSync } from 'node:fs';

export interface Abstract {
  title: string;
  sentences: string[];
}

export interface BenchQuery {
  id: string;
  text: string;
}

/** The corpus as titles and sentences (a simple splitter: ". " before a capital, digit or bracket). */
export function loadAbstracts(corpusFile: string): Abstract[] {
  const abstracts: Abstract[] = [];
  for (const line of readFileSync(corpusFile, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const doc = JSON.parse(line) as { title?: string; text?: string };
    const sentences = (doc.text ?? '')
      .split(/(?<=[.!?])\s+(?=[A-Z0-9([])/)
      .map((sentence) => sentence.trim())
      .filter((sentence) => sentence.length > 0);
    if (sentences.length > 0) abstracts.push({ title: (doc.title ?? '').trim(), sentences });
  }
  if (abstracts.length === 0) throw new Error(`no documents in ${corpusFile}`);
  return abstracts;
}

export function loadQueries(queriesFile: string): BenchQuery[] {
  return readFileSync(queriesFile, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as { _id: string; text: string })
    .map((query) => ({ id: query._id, text: query.text }));
}

/** Query ids of a BEIR qrels file (`query-id\tcorpus-id\tscore`, with a header line). */
export function loadQrelQueryIds(qrelsFile: string): Set<string> {
  const ids = new Set<string>();
  for (const line of readFileSync(qrelsFile, 'utf8').split('\n').slice(1)) {
    const id = line.split('\t')[0]?.trim();
    if (id) ids.add(id);
  }
  return ids;
}

/** mulberry32: a small, fast, seeded PRNG in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MIN_DOC_WORDS = 300;
const MAX_DOC_WORDS = 12_000;

/** An endless stream of synthetic documents (plain text, paragraphs separated by blank lines). */
export function* syntheticDocuments(abstracts: Abstract[], random: () => number): Generator<string> {
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
  for (;;) {
    const targetWords = MIN_DOC_WORDS + Math.floor(random() * (MAX_DOC_WORDS - MIN_DOC_WORDS));
    const paragraphs: string[] = [pick(abstracts).title];
    let words = 0;
    while (words < targetWords) {
      const abstract = pick(abstracts);
      const length = 3 + Math.floor(random() * 6);
      const start = Math.floor(random() * Math.max(1, abstract.sentences.length - length + 1));
      const paragraph = abstract.sentences.slice(start, start + length).join(' ');
      words += paragraph.split(' ').length;
      paragraphs.push(paragraph);
    }
    yield paragraphs.join('\n\n');
  }
}
