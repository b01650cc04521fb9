/**
 * Entry point of document parsing: detect the format, run its parser, and turn every failure into an
 * `IngestError` the knowledge-base file can show as `last_error`. Library errors keep only their message
 * (never a stack); an abort is passed through unchanged, since it says nothing about the file.
 */
import { IngestError, type ParsedDocument } from '../document.ts';
import { emptyFile, isBlank, type DocumentParser } from './common.ts';
import { CsvParser } from './csv.ts';
import { detectFormat, type Format } from './detect.ts';
import { DocxParser } from './docx.ts';
import { HtmlParser } from './html.ts';
import { JsonParser } from './json.ts';
import { MarkdownParser } from './markdown.ts';
import { PdfParser } from './pdf.ts';
import { TextParser } from './text.ts';

export { detectFormat, type Format } from './detect.ts';
export { DEFAULT_DOCX_LIMITS } from './docx.ts';
export { DEFAULT_PDF_LIMITS } from './pdf.ts';

export interface ParseOptions {
  signal?: AbortSignal;
  /** PDFs with more pages are refused; default `DEFAULT_PDF_LIMITS.maxPages` (5,000). */
  maxPdfPages?: number;
}

/** Library messages can quote the input; keep what reaches `last_error` short. */
const MAX_MESSAGE_CHARS = 500;

const FORMAT_NAMES: Record<Format, string> = {
  pdf: 'PDF',
  docx: 'DOCX',
  markdown: 'Markdown',
  html: 'HTML',
  csv: 'CSV',
  json: 'JSON',
  text: 'text',
};

function parserFor(format: Format, options: ParseOptions): DocumentParser {
  switch (format) {
    case 'pdf':
      return new PdfParser(options.maxPdfPages === undefined ? {} : { maxPages: options.maxPdfPages });
    case 'docx':
      return new DocxParser();
    case 'markdown':
      return MarkdownParser;
    case 'html':
      return HtmlParser;
    case 'csv':
      return CsvParser;
    case 'json':
      return JsonParser;
    case 'text':
      return TextParser;
  }
}

function shorten(message: string): string {
  return message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…` : message;
}

export async function parseDocument(bytes: Buffer, filename: string, options: ParseOptions = {}): Promise<ParsedDocument> {
  const { signal } = options;
  signal?.throwIfAborted();
  if (isBlank(bytes)) throw emptyFile();

  let format: Format | undefined;
  let parsed: ParsedDocument;
  try {
    format = detectFormat(bytes, filename);
    parsed = await parserFor(format, options).parse(bytes, filename, signal);
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    if (error instanceof IngestError) {
      if (error.message.length <= MAX_MESSAGE_CHARS) throw error;
      throw new IngestError(error.code, shorten(error.message), { cause: error });
    }
    const reason = error instanceof Error ? error.message : String(error);
    const what = format ? FORMAT_NAMES[format] : 'a document';
    throw new IngestError('invalid_file', shorten(`The file could not be parsed as ${what}: ${reason}`), { cause: error });
  }

  const sections = parsed.sections.filter((section) => /\S/.test(section.text));
  if (sections.length === 0) throw new IngestError('invalid_file', 'The file contains no text');
  return { format: parsed.format, sections };
}
