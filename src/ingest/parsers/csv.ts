/**
 * CSV/TSV: the first row names the columns; every later row becomes one section of `column: value` lines,
 * which reads well to an embedding model and cites as "row N". The text is streamed through csv-parse in
 * 64 KB slices and each record is handed on as its section at once, so memory stays near the size of the
 * text itself instead of holding every parsed row (or every section) as well.
 */
import { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { IngestError, type DocumentSection, type ParsedDocument } from '../document.ts';
import { decodeText, extensionOf, normalizeNewlines, yieldAndCheck, type StreamingParser } from './common.ts';
import { DEFAULT_FORMAT_LIMITS, overLimit } from './limits.ts';

const SLICE_CHARS = 64 * 1024;
const RECORDS_PER_TURN = 10_000;
const DELIMITERS = [',', ';', '\t', '|'];

/** The candidate delimiter seen most often outside quotes in the header line (`,` when none is). */
export function sniffDelimiter(text: string): string {
  const counts = new Map<string, number>();
  let quoted = false;
  for (let at = 0; at < Math.min(text.length, SLICE_CHARS); at += 1) {
    const char = text[at] as string;
    if (char === '"') quoted = !quoted;
    else if (!quoted && char === '\n') break;
    else if (!quoted && DELIMITERS.includes(char)) counts.set(char, (counts.get(char) ?? 0) + 1);
  }
  let best = ',';
  for (const [delimiter, count] of counts) if (count > (counts.get(best) ?? 0)) best = delimiter;
  return best;
}

function* slices(text: string): Generator<string> {
  for (let at = 0; at < text.length; at += SLICE_CHARS) yield text.slice(at, at + SLICE_CHARS);
}

function recordText(header: string[], record: string[]): string {
  const lines: string[] = [];
  record.forEach((value, index) => {
    const trimmed = value.trim();
    if (trimmed) lines.push(`${header[index]?.trim() || `column ${index + 1}`}: ${trimmed}`);
  });
  return lines.join('\n');
}

export class CsvParser implements StreamingParser {
  constructor(private readonly maxRows: number = DEFAULT_FORMAT_LIMITS.maxCsvRows) {}

  async parse(bytes: Buffer, filename: string, signal?: AbortSignal): Promise<ParsedDocument> {
    const sections: DocumentSection[] = [];
    for await (const section of this.sections(bytes, filename, signal)) sections.push(section);
    return { format: 'csv', sections };
  }

  async *sections(bytes: Buffer, filename: string, signal?: AbortSignal): AsyncGenerator<DocumentSection> {
    const text = normalizeNewlines(decodeText(bytes));
    const delimiter = extensionOf(filename) === '.tsv' ? '\t' : sniffDelimiter(text);
    let header: string[] | undefined;
    let count = 0;
    let emitted = 0;

    const parser = parse({ delimiter, relax_column_count: true, skip_empty_lines: true });
    const source = Readable.from(slices(text));
    source.pipe(parser);
    try {
      for await (const record of parser as AsyncIterable<string[]>) {
        if (++count % RECORDS_PER_TURN === 0) await yieldAndCheck(signal);
        if (header === undefined) header = record;
        else {
          if (count - 1 > this.maxRows) throw new IngestError('invalid_file', overLimit('CSV file', this.maxRows, 'rows'));
          const lines = recordText(header, record);
          if (lines) {
            emitted += 1;
            yield { text: lines };
          }
        }
      }
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (error instanceof IngestError) throw error;
      throw new IngestError('invalid_file', `The file could not be parsed as CSV: ${(error as Error).message}`, { cause: error });
    } finally {
      source.destroy();
      parser.destroy();
    }
    // A header-only file still says something.
    if (emitted === 0 && header) yield { text: header.join(', ') };
  }
}
