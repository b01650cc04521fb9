/** The `citations` Cairn adds to a grounded answer, and the `url_citation` annotations for the [n] it uses. */
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

/**
 * Chat Completions defines only `url_citation` annotations, and clients that validate replies
 * (the AI SDK) reject any other type, so a cited file is named by its content URL.
 */
export interface UrlCitationAnnotation {
  type: 'url_citation';
  url_citation: { url: string; title: string; start_index: number; end_index: number };
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

/**
 * One annotation per [n] marker of a known source, in order, spanning the marker (indices in
 * UTF-16 code units of `content`, as JavaScript's `slice` counts); unknown numbers are ignored.
 * `filesUrl` is this server's `/v1/files` URL; the file's bytes are at `{filesUrl}/{id}/content`.
 */
export function annotationsFor(content: string, citations: Citation[], filesUrl: string): UrlCitationAnnotation[] {
  const annotations: UrlCitationAnnotation[] = [];
  for (const match of content.matchAll(/\[(\d{1,3})\]/g)) {
    const citation = citations.find((candidate) => candidate.index === Number(match[1]));
    if (!citation) continue;
    const url = `${filesUrl}/${encodeURIComponent(citation.file_id)}/content`;
    annotations.push({ type: 'url_citation', url_citation: { url, title: citation.filename, start_index: match.index, end_index: match.index + match[0].length } });
  }
  return annotations;
}
