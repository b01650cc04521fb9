/**
 * Which parser a file goes to. Content wins over the name where the content is unambiguous (magic bytes),
 * because names are user-supplied: a PNG renamed `.txt` is still a PNG. The name decides between the text
 * formats, which share no signature.
 */
import { extensionOf, unsupportedFile } from './common.ts';
import { looksLikeZip, readZipDirectory } from './zip-directory.ts';

export type Format = 'pdf' | 'docx' | 'markdown' | 'html' | 'csv' | 'json' | 'text';

const PDF_MAGIC = [0x25, 0x50, 0x44, 0x46, 0x2d]; // %PDF-
const SNIFF_BYTES = 8192;
/** Share of C0 control characters (other than whitespace and ESC) above which a file without NULs is still binary. */
const MAX_CONTROL_SHARE = 0.05;

/**
 * Signatures of common binary files, to name them in the error. Only signatures no real text starts with
 * (each has a byte outside printable ASCII); other binaries are caught by the NUL/control-character test.
 */
const BINARY_MAGICS: Array<{ bytes: number[]; what: string }> = [
  { bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], what: 'PNG image' },
  { bytes: [0xff, 0xd8, 0xff], what: 'JPEG image' },
  { bytes: [0x47, 0x49, 0x46, 0x38, 0x39, 0x61], what: 'GIF image' },
  { bytes: [0x47, 0x49, 0x46, 0x38, 0x37, 0x61], what: 'GIF image' },
  { bytes: [0x7f, 0x45, 0x4c, 0x46], what: 'ELF executable' },
  { bytes: [0x1f, 0x8b], what: 'gzip archive' },
  { bytes: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], what: '7-Zip archive' },
  { bytes: [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07], what: 'RAR archive' },
  { bytes: [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1], what: 'legacy Office document (.doc/.xls/.ppt; save it as DOCX)' },
  { bytes: [0x00, 0x61, 0x73, 0x6d], what: 'WebAssembly module' },
];

const EXTENSIONS: Record<string, Format> = {
  '.pdf': 'pdf',
  '.docx': 'docx',
  '.md': 'markdown',
  '.markdown': 'markdown',
  '.mdown': 'markdown',
  '.mkd': 'markdown',
  '.html': 'html',
  '.htm': 'html',
  '.xhtml': 'html',
  '.csv': 'csv',
  '.tsv': 'csv',
  '.json': 'json',
  '.jsonl': 'json',
  '.ndjson': 'json',
};

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return bytes.length >= magic.length && magic.every((byte, index) => bytes[index] === byte);
}

function looksBinary(bytes: Uint8Array): boolean {
  if (startsWith(bytes, [0xff, 0xfe]) || startsWith(bytes, [0xfe, 0xff])) return false; // UTF-16 text has NULs
  const head = bytes.subarray(0, SNIFF_BYTES);
  let controls = 0;
  for (const byte of head) {
    if (byte === 0) return true;
    // Tab, LF, VT, FF, CR and ESC (ANSI colours in logs) occur in text; other C0 controls do not.
    if (byte < 0x20 && !(byte >= 0x09 && byte <= 0x0d) && byte !== 0x1b) controls += 1;
  }
  return controls > head.length * MAX_CONTROL_SHARE;
}

function zipFormat(bytes: Buffer, extension: string): Format {
  let names: string[];
  try {
    names = readZipDirectory(bytes).map((entry) => entry.name);
  } catch {
    // A damaged archive named .docx goes to the DOCX parser, which reports precisely what is wrong.
    if (extension === '.docx') return 'docx';
    throw unsupportedFile('damaged ZIP archive');
  }
  if (names.includes('word/document.xml')) return 'docx';
  throw unsupportedFile(`ZIP archive that is not a DOCX document${extension ? ` (${extension})` : ''}`);
}

function sniffTextFormat(bytes: Buffer): Format {
  // trimStart also drops a BOM (U+FEFF counts as whitespace).
  const head = bytes.subarray(0, 1024).toString('utf8').trimStart().slice(0, 64).toLowerCase();
  return head.startsWith('<!doctype html') || head.startsWith('<html') ? 'html' : 'text';
}

/**
 * The format to parse `bytes` as. Throws `IngestError('unsupported_file')` for binary content that is not
 * PDF or DOCX. Text that is not valid UTF-8 is still text (decoded as Windows-1252 by `decodeText`); only
 * NUL bytes or more than 5% control characters in the first 8 KB make content binary.
 */
export function detectFormat(bytes: Buffer, filename: string): Format {
  const extension = extensionOf(filename);
  // Only at offset 0: a text file that merely mentions "%PDF-" must stay text. PDFs with leading junk still
  // reach the PDF parser through their .pdf name.
  if (startsWith(bytes, PDF_MAGIC)) return 'pdf';
  if (looksLikeZip(bytes)) return zipFormat(bytes, extension);
  const known = BINARY_MAGICS.find((magic) => startsWith(bytes, magic.bytes));
  if (known) throw unsupportedFile(known.what);
  const byName = EXTENSIONS[extension];
  // Other bytes named .pdf/.docx reach their parser, which says why they are not a valid one.
  if (byName === 'pdf' || byName === 'docx') return byName;
  if (looksBinary(bytes)) throw unsupportedFile(`binary data${extension ? ` (${extension})` : ''}`);
  return byName ?? sniffTextFormat(bytes);
}
