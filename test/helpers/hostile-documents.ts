/**
 * Hostile documents for ingestion tests, built at test time in milliseconds: a ZIP-bomb DOCX whose main part
 * inflates to hundreds of MB (honest or lying about its size) and a PDF with thousands of pages.
 */
import { constants as zlibConstants, crc32, deflateRawSync } from 'node:zlib';
import PDFDocument from 'pdfkit';

const MB = 1024 * 1024;
const W = 'http://schemas.openxmlformats.org/wordprocessingml/2006/main';
const CONTENT_TYPES = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
  <Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
  <Default Extension="xml" ContentType="application/xml"/>
  <Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
</Types>`;
const ROOT_RELS = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
  <Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>
</Relationships>`;

export interface ZipPart {
  name: string;
  /** Raw DEFLATE data. */
  deflated: Buffer;
  crc: number;
  /** What the headers declare as the inflated size (a lying bomb declares less than it holds). */
  declaredSize: number;
}

function deflatedPart(name: string, text: string): ZipPart {
  const raw = Buffer.from(text);
  return { name, deflated: deflateRawSync(raw), crc: crc32(raw), declaredSize: raw.length };
}

/**
 * word/document.xml whose text run holds `megabytes` MB of spaces. A full flush resets the compressor, so
 * one flushed 1 MB block is byte-for-byte what every further MB compresses to: the 300 MB part is built by
 * repetition in milliseconds (jszip takes 5–20 s to deflate it here) and the test never holds it inflated.
 */
export function bombPart(megabytes: number): ZipPart {
  const head = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="${W}"><w:body><w:p><w:r><w:t>`);
  const tail = Buffer.from('</w:t></w:r></w:p></w:body></w:document>');
  const spaces = Buffer.alloc(MB, 0x20);
  const flushed = (bytes: Buffer) => deflateRawSync(bytes, { level: 9, finishFlush: zlibConstants.Z_FULL_FLUSH });
  const block = flushed(spaces);
  let crc = crc32(head);
  for (let index = 0; index < megabytes; index += 1) crc = crc32(spaces, crc);
  crc = crc32(tail, crc);
  const deflated = Buffer.concat([flushed(head), ...Array.from({ length: megabytes }, () => block), deflateRawSync(tail)]);
  return { name: 'word/document.xml', deflated, crc, declaredSize: head.length + megabytes * MB + tail.length };
}

/** A ZIP written field by field, so the test controls every declared size. */
function writeZip(parts: ZipPart[]): Buffer {
  const locals: Buffer[] = [];
  const directory: Buffer[] = [];
  let offset = 0;
  for (const part of parts) {
    const name = Buffer.from(part.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt32LE(part.crc >>> 0, 14);
    local.writeUInt32LE(part.deflated.length, 18);
    local.writeUInt32LE(part.declaredSize, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(part.crc >>> 0, 16);
    central.writeUInt32LE(part.deflated.length, 20);
    central.writeUInt32LE(part.declaredSize, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, part.deflated);
    directory.push(central, name);
    offset += 30 + name.length + part.deflated.length;
  }
  const size = directory.reduce((sum, part) => sum + part.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(parts.length, 8);
  end.writeUInt16LE(parts.length, 10);
  end.writeUInt32LE(size, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...directory, end]);
}

/** A DOCX package (content types, relationships, main part) around the given main part. */
export function makeDocx(main: ZipPart): Buffer {
  return writeZip([
    deflatedPart('[Content_Types].xml', CONTENT_TYPES),
    deflatedPart('_rels/.rels', ROOT_RELS),
    main,
  ]);
}

/** 10,000 tiny blank pages (text on the first only): small and quick to write, long to parse naively. */
export function makeLongPdf(pages: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const doc = new PDFDocument({ autoFirstPage: false, compress: true });
    const chunks: Buffer[] = [];
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
    for (let page = 0; page < pages; page += 1) {
      doc.addPage({ size: [72, 72], margin: 0 });
      if (page === 0) doc.fontSize(8).text('First page of a very long PDF.');
    }
    doc.end();
  });
}
