/**
 * Retrieval often returns the same text twice: neighbouring chunks of one file overlap by design
 * (chunk overlap), and the same document may sit in two knowledge bases. Sending both wastes the
 * prompt budget and splits citations, so overlapping chunks of a file are stitched into one
 * passage and exact duplicates (after whitespace and case folding) are dropped.
 */
import type { PageBreak } from '../ingest/document.ts';
import type { RetrievedChunk } from './retriever.ts';

function sameFile(a: RetrievedChunk, b: RetrievedChunk): boolean {
  return a.knowledgeBaseId === b.knowledgeBaseId && a.fileId === b.fileId;
}

function overlaps(a: RetrievedChunk, b: RetrievedChunk): boolean {
  return a.charStart < b.charEnd && b.charStart < a.charEnd;
}

/** Joins two overlapping chunks of one file using their character offsets in the document. */
function stitch(a: RetrievedChunk, b: RetrievedChunk): RetrievedChunk {
  const [first, second] = a.charStart <= b.charStart ? [a, b] : [b, a];
  const text = second.charEnd <= first.charEnd ? first.text : first.text + second.text.slice(first.charEnd - second.charStart);
  const best = a.score >= b.score ? a : b;
  return {
    ...best,
    text,
    charStart: first.charStart,
    charEnd: Math.max(first.charEnd, second.charEnd),
    pageStart: first.pageStart ?? second.pageStart,
    pageEnd: second.pageEnd ?? first.pageEnd,
    pageBreaks: mergedBreaks(first, second),
  };
}

/** Both chunks' page breaks, in order; undefined unless both have them (a chunk stored before they existed). */
function mergedBreaks(first: RetrievedChunk, second: RetrievedChunk): PageBreak[] | undefined {
  if (!first.pageBreaks || !second.pageBreaks) return undefined;
  const byChar = new Map<number, PageBreak>();
  for (const pageBreak of [...first.pageBreaks, ...second.pageBreaks]) byChar.set(pageBreak.char, pageBreak);
  return [...byChar.values()].sort((a, b) => a.char - b.char);
}

const normalised = (text: string): string => text.replace(/\s+/g, ' ').trim().toLowerCase();

/** Keeps rank order: a merged passage takes the place of its better-ranked part. */
export function mergeChunks(chunks: RetrievedChunk[]): RetrievedChunk[] {
  const merged: RetrievedChunk[] = [];
  // Each text is normalised once: re-normalising every kept chunk per candidate made this quadratic.
  const seenTexts = new Set<string>();
  for (const chunk of chunks) {
    const partner = merged.findIndex((kept) => sameFile(kept, chunk) && overlaps(kept, chunk));
    if (partner >= 0) {
      merged[partner] = stitch(merged[partner]!, chunk);
      seenTexts.add(normalised(merged[partner]!.text));
      continue;
    }
    const text = normalised(chunk.text);
    if (seenTexts.has(text)) continue;
    seenTexts.add(text);
    merged.push(chunk);
  }
  return merged;
}
