/** The `citations` Cairn adds to a grounded answer, and the `file_citation` annotations for the [n] it uses. */
import type { Quote } from '../models/extractive-answer.ts';
import type { Source } from './context.ts';
import type { RetrievedChunk } from './retriever.ts';

export interface Citation {
  index: number;
  knowledge_base_id: string;
  file_id: string;
  filename: string;
  chunk_id: string;
  score: number;
  text: string;
  /** The page of the quoted sentence when the answer quotes one (extractive), else page_start. */
  page: number | null;
  /** First and last page the passage covers (PDF); null for formats without pages. */
  page_start: number | null;
  page_end: number | null;
  attributes: Record<string, string | number | boolean>;
}

export interface FileCitationAnnotation {
  type: 'file_citation';
  file_citation: { file_id: string; filename: string; index: number };
}

/** `quotes`: sentences the answer quotes (extractive); a source's `page` is then that of its first quoted sentence. */
export function citationsOf(sources: Source[], quotes: readonly Quote[] = []): Citation[] {
  return sources.map(({ index, chunk }) => {
    const quote = quotes.find((candidate) => candidate.source === index);
    const pageStart = chunk.pageStart ?? null;
    return {
      index,
      knowledge_base_id: chunk.knowledgeBaseId,
      file_id: chunk.fileId,
      filename: chunk.filename,
      chunk_id: chunk.chunkId,
      score: chunk.score,
      text: chunk.text,
      page: quote === undefined ? pageStart : pageAt(chunk, quote.start),
      page_start: pageStart,
      page_end: chunk.pageEnd ?? pageStart,
      attributes: chunk.attributes,
    };
  });
}

/**
 * The page of the text at `offset` in the chunk's text: the last page break at or before it. A
 * chunk stored before page breaks were recorded can only say its first page.
 */
export function pageAt(chunk: Pick<RetrievedChunk, 'charStart' | 'pageStart' | 'pageBreaks'>, offset: number): number | null {
  if (chunk.pageStart === undefined) return null;
  let page = chunk.pageStart;
  for (const pageBreak of chunk.pageBreaks ?? []) {
    if (pageBreak.char > chunk.charStart + offset) break;
    page = pageBreak.page;
  }
  return page;
}

/** One annotation per distinct source the answer cites, in order of first mention; unknown numbers are ignored. */
export function annotationsFor(content: string, citations: Citation[]): FileCitationAnnotation[] {
  const seen = new Set<number>();
  const annotations: FileCitationAnnotation[] = [];
  for (const match of content.matchAll(/\[(\d{1,3})\]/g)) {
    const citation = citations.find((candidate) => candidate.index === Number(match[1]));
    if (!citation || seen.has(citation.index)) continue;
    seen.add(citation.index);
    annotations.push({ type: 'file_citation', file_citation: { file_id: citation.file_id, filename: citation.filename, index: citation.index } });
  }
  return annotations;
}
