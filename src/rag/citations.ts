/** The `citations` Cairn adds to a grounded answer, and the `url_citation` annotations for the [n] it uses. */
import type { Source } from './context.ts';

export interface Citation {
  index: number;
  knowledge_base_id: string;
  file_id: string;
  filename: string;
  chunk_id: string;
  score: number;
  text: string;
  page: number | null;
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

export function citationsOf(sources: Source[]): Citation[] {
  return sources.map(({ index, chunk }) => ({
    index,
    knowledge_base_id: chunk.knowledgeBaseId,
    file_id: chunk.fileId,
    filename: chunk.filename,
    chunk_id: chunk.chunkId,
    score: chunk.score,
    text: chunk.text,
    page: chunk.pageStart ?? null,
    attributes: chunk.attributes,
  }));
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
