/**
 * Entry point of document parsing: detect the format, run its parser, and turn every failure into an
 * `IngestError` the knowledge-base file can show as `last_error`. Library errors keep only their message
 * (never a stack); an abort is passed through unchanged, since it says nothing about the file.
 */
import { IngestError, type DocumentSection, type ParsedDocument } from '../document.ts';
import { emptyFile, isBlank, type DocumentParser, type StreamingParser } from './common.ts';
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
export { DEFAULT_FORMAT_LIMITS, type FormatLimits } from './limits.ts';

export interface ParseOptions {
  signal?: AbortSignal;
  /** PDFs with more pages are refused; default `DEFAULT_PDF_LIMITS.maxPages` (5,000). */
  maxPdfPages?: number;
  /** CSV data rows per file; default `DEFAULT_FORMAT_LIMITS.maxCsvRows`. */
  maxCsvRows?: number;
  /** JSON scalar values per file; default `DEFAULT_FORMAT_LIMITS.maxJsonValues`. */
  maxJsonValues?: number;
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

function parserFor(format: Format, options: ParseOptions): DocumentParser | StreamingParser {
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
      return new CsvParser(options.maxCsvRows);
    case 'json':
      return new JsonParser(options.maxJsonValues);
    case 'text':
      return TextParser;
  }
}

function shorten(message: string): string {
  return message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…` : message;
}

function normalised(error: unknown, format: Format | undefined, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted) return signal.reason;
  if (error instanceof IngestError) {
    if (error.message.length <= MAX_MESSAGE_CHARS) return error;
    return new IngestError(error.code, shorten(error.message), { cause: error });
  }
  const reason = error instanceof Error ? error.message : String(error);
  const what = format ? FORMAT_NAMES[format] : 'a document';
  return new IngestError('invalid_file', shorten(`The file could not be parsed as ${what}: ${reason}`), { cause: error });
}

async function* sectionsOf(parser: DocumentParser | StreamingParser, bytes: Buffer, filename: string, signal?: AbortSignal): AsyncGenerator<DocumentSection> {
  if ('sections' in parser) yield* parser.sections(bytes, filename, signal);
  else yield* (await parser.parse(bytes, filename, signal)).sections;
}

/**
 * A document read section by section (CSV rows and JSON array elements as they are parsed, other formats
 * once parsed whole): blank sections are dropped, and every failure is an `IngestError` (an abort passes
 * through). Throws "The file contains no text" at the end when no section had any.
 */
export function openDocument(bytes: Buffer, filename: string, options: ParseOptions = {}): { format: Format; sections: AsyncGenerator<DocumentSection> } {
  const { signal } = options;
  signal?.throwIfAborted();
  if (isBlank(bytes)) throw emptyFile();
  let format: Format;
  try {
    format = detectFormat(bytes, filename);
  } catch (error) {
    throw normalised(error, undefined, signal);
  }
  const parser = parserFor(format, options);
  async function* sections(): AsyncGenerator<DocumentSection> {
    let any = false;
    try {
      for await (const section of sectionsOf(parser, bytes, filename, signal)) {
        if (!/\S/.test(section.text)) continue;
        any = true;
        yield section;
      }
    } catch (error) {
      throw normalised(error, format, signal);
    }
    if (!any) throw new IngestError('invalid_file', 'The file contains no text');
  }
  return { format, sections: sections() };
}

export async function parseDocument(bytes: Buffer, filename: string, options: ParseOptions = {}): Promise<ParsedDocument> {
  const document = openDocument(bytes, filename, options);
  const sections: DocumentSection[] = [];
  for await (const section of document.sections) sections.push(section);
  return { format: document.format, sections };
}
