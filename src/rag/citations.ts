/** The `citations` Cairn adds to a grounded answer, and the `file_citation` annotations for the [n] it uses. */
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

export interface FileCitationAnnotation {
  type: 'file_citation';
  file_citation: { file_id: string; filename: string; index: number };
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
