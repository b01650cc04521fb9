/** Pieces every parser shares: the parser contract, text decoding and small guards for untrusted input. */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { IngestError, type DocumentSection, type ParsedDocument } from '../document.ts';

/** One file format. Parsers are stateless apart from their limits, so one instance serves every job. */
export interface DocumentParser {
  parse(bytes: Buffer, filename: string, signal?: AbortSignal): Promise<ParsedDocument>;
}

/** A parser that can also hand its sections over one at a time, so the whole document is never held at once. */
export interface StreamingParser extends DocumentParser {
  sections(bytes: Buffer, filename: string, signal?: AbortSignal): AsyncIterable<DocumentSection>;
}

export const SUPPORTED_FORMATS = 'PDF, text, Markdown, HTML, CSV, JSON, DOCX';

export function unsupportedFile(what: string): IngestError {
  return new IngestError('unsupported_file', `Unsupported file type: ${what}; supported: ${SUPPORTED_FORMATS}`);
}

export function emptyFile(): IngestError {
  return new IngestError('invalid_file', 'The file is empty');
}

/** Lower-cased extension with its dot (`.md`), or `''`. */
export function extensionOf(filename: string): string {
  const base = filename.slice(Math.max(filename.lastIndexOf('/'), filename.lastIndexOf('\\')) + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot).toLowerCase() : '';
}

/** True when the bytes are nothing but ASCII whitespace, after an optional UTF-8 BOM (stops at the first other byte). */
export function isBlank(bytes: Uint8Array): boolean {
  const body = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? bytes.subarray(3) : bytes;
  for (const byte of body) {
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d && byte !== 0x0c && byte !== 0x0b) return false;
  }
  return true;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Windows-1252's characters for bytes 0x80–0x9F (Node's decoder gives the C1 controls there instead). */
const CP1252_HIGH = '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008dŽ\u008f\u0090‘’“”•–—˜™š›œ\u009džŸ';

function decodeWindows1252(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString('latin1')
    .replace(/[\u0080-\u009f]/g, (char) => CP1252_HIGH[char.charCodeAt(0) - 0x80] as string);
}

/**
 * Bytes → string for the text formats. UTF-16 with a BOM is honoured (Notepad's "Unicode"); a UTF-8 BOM is
 * dropped. Bytes that are not valid UTF-8 are read as Windows-1252 rather than filled with U+FFFD: the usual
 * cause is a legacy export (Excel CSV, old HTML), and every byte then keeps a meaning. Truly binary content
 * never gets here: `detectFormat` refuses it first.
 */
export function decodeText(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes.subarray(2));
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes.subarray(2));
  const body = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? bytes.subarray(3) : bytes;
  try {
    return strictUtf8.decode(body);
  } catch {
    return decodeWindows1252(body);
  }
}

/** CRLF and lone CR → LF. Linear: the pattern cannot backtrack. */
export function normalizeNewlines(text: string): string {
  return text.includes('\r') ? text.replace(/\r\n?/g, '\n') : text;
}

const MAX_TITLE_CHARS = 200;

/** Section titles are metadata repeated on every chunk: collapse whitespace and keep them short. */
export function cleanTitle(raw: string): string | undefined {
  const title = raw.slice(0, MAX_TITLE_CHARS * 4).replace(/\s+/g, ' ').trim();
  if (!title) return undefined;
  return title.length > MAX_TITLE_CHARS ? `${title.slice(0, MAX_TITLE_CHARS - 1)}…` : title;
}

/**
 * Long synchronous loops call this every few thousand items: it lets other requests run (embedded mode
 * parses inside the API process) and makes an abort take effect mid-file.
 */
export async function yieldAndCheck(signal: AbortSignal | undefined): Promise<void> {
  signal?.throwIfAborted();
  await nextTurn();
  signal?.throwIfAborted();
}
