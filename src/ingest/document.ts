/** What parsers produce and the chunker consumes. */

/** A run of text with where it came from. PDFs give one per page; Markdown one per section; CSV/JSON one per record. */
export interface DocumentSection {
  text: string;
  /** 1-based page number (PDF). */
  page?: number;
  /** Nearest heading above this text (Markdown, HTML, DOCX). */
  title?: string;
}

export interface ParsedDocument {
  /** Detected format, e.g. `pdf`, `markdown`, `html`, `text`, `csv`, `json`, `docx`. */
  format: string;
  sections: DocumentSection[];
}

/** Page `page` begins at offset `char` of the document's full text (it may begin before the chunk does). */
export interface PageBreak {
  char: number;
  page: number;
}

/** One piece of a document, sized for the embedding model, with enough metadata to cite it. */
export interface Chunk {
  /** 0-based position in the file. */
  index: number;
  text: string;
  pageStart?: number;
  pageEnd?: number;
  /** Where each page in the chunk begins (document offsets, ascending), to cite the page of a sentence within it. */
  pageBreaks?: PageBreak[];
  title?: string;
  /** Character offsets into the document's full text (sections joined with "\n\n"). */
  charStart: number;
  charEnd: number;
  /** Tokens in `text`, by the tokenizer that sized it. */
  tokenCount: number;
}

export type IngestErrorCode = 'invalid_file' | 'unsupported_file' | 'server_error';

/** A file Cairn cannot ingest: it becomes the knowledge-base file's `last_error`, never a crash. */
export class IngestError extends Error {
  constructor(
    readonly code: IngestErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
