/**
 * DOCX via mammoth (DOCX → HTML, then the HTML extractor, so Word headings become section titles).
 *
 * Zip bombs: mammoth's ZIP library inflates whatever an entry holds, so mammoth never sees the upload.
 * Instead: (1) the central directory is read here and the XML parts' declared sizes must add up to at most
 * `maxXmlBytes`, checked before anything is inflated; (2) each part is inflated with zlib's output capped at
 * its declared size, and refused if its real size differs (a lying header costs at most its declared
 * size); (3) only those verified parts are re-packed, uncompressed, for mammoth. Media (images, fonts,
 * embedded objects) are never inflated: they carry no text. So at most `maxXmlBytes` are decompressed.
 */
import mammoth from 'mammoth';
import { IngestError, type ParsedDocument } from '../document.ts';
import { unsupportedFile, type DocumentParser } from './common.ts';
import { extractHtmlSections } from './html.ts';
import { inflateZipEntry, readZipDirectory, ZipFormatError, type ZipEntry } from './zip-directory.ts';
import { buildStoredZip, type StoredFile } from './zip-store.ts';

export interface DocxLimits {
  /** Total decompressed size of the XML parts. mammoth builds a DOM several times this size. */
  maxXmlBytes: number;
}

export const DEFAULT_DOCX_LIMITS: DocxLimits = { maxXmlBytes: 50 * 1024 * 1024 };

const MAIN_PART = 'word/document.xml';

function isXmlPart(name: string): boolean {
  const lower = name.toLowerCase();
  return lower.endsWith('.xml') || lower.endsWith('.rels');
}

function megabytes(bytes: number): string {
  return `${Math.round((bytes / (1024 * 1024)) * 10) / 10} MB`;
}

export class DocxParser implements DocumentParser {
  private readonly limits: DocxLimits;

  constructor(limits: Partial<DocxLimits> = {}) {
    this.limits = { ...DEFAULT_DOCX_LIMITS, ...limits };
  }

  async parse(bytes: Buffer, _filename: string, signal?: AbortSignal): Promise<ParsedDocument> {
    const parts = this.xmlParts(bytes);
    const files: StoredFile[] = [];
    try {
      for (const entry of parts) {
        signal?.throwIfAborted();
        files.push({ name: entry.name, data: await inflateZipEntry(bytes, entry) });
      }
    } catch (error) {
      if (error instanceof ZipFormatError) throw notDocx(error);
      throw error;
    }
    signal?.throwIfAborted();
    return { format: 'docx', sections: await extractHtmlSections(await toHtml(buildStoredZip(files)), signal) };
  }

  /** The XML parts to hand to mammoth, after the size checks that need no decompression. */
  private xmlParts(bytes: Buffer): ZipEntry[] {
    let entries: ZipEntry[];
    try {
      entries = readZipDirectory(bytes);
    } catch (error) {
      if (error instanceof ZipFormatError) throw notDocx(error);
      throw error;
    }
    // One entry per name (the last, as in the directory order); duplicates would otherwise double-count.
    const byName = new Map<string, ZipEntry>();
    for (const entry of entries) if (isXmlPart(entry.name)) byName.set(entry.name, entry);
    if (!byName.has(MAIN_PART)) throw unsupportedFile('ZIP archive that is not a DOCX document');

    const declared = [...byName.values()].reduce((sum, entry) => sum + entry.uncompressedSize, 0);
    if (declared > this.limits.maxXmlBytes) {
      throw new IngestError(
        'invalid_file',
        `The DOCX expands to ${megabytes(declared)} of XML, over the ${megabytes(this.limits.maxXmlBytes)} limit (a ZIP bomb or an unusually large document)`,
      );
    }
    return [...byName.values()];
  }
}

async function toHtml(docx: Buffer): Promise<string> {
  try {
    const result = await mammoth.convertToHtml(
      { buffer: docx },
      {
        // Images are dropped without being read (they were not even inflated); no linked files are fetched.
        convertImage: mammoth.images.imgElement(async () => ({ src: '' })),
        externalFileAccess: false,
      },
    );
    return result.value;
  } catch (error) {
    // mammoth walks the XML tree recursively: hostile nesting ends in a (catchable) stack overflow.
    if (error instanceof RangeError && error.message.includes('call stack')) {
      throw new IngestError('invalid_file', 'The DOCX is nested too deeply to read', { cause: error });
    }
    throw error;
  }
}

function notDocx(error: ZipFormatError): IngestError {
  return new IngestError('invalid_file', `The file could not be read as DOCX: ${error.message}`, { cause: error });
}
