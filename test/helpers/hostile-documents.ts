/**
 * Hostile documents for ingestion tests, built at test time in milliseconds: a ZIP-bomb DOCX whose main part
 * inflates to hundreds of MB (honest or lying about its size) and a PDF with thousands of pages.
 */
import { constants as zlibConstants, crc32, deflateRawSync } from 'node:zlib';
import PDFDocument from 'pdfkit';
import { deflatedEntry, writeZip, type ZipEntry } from './zip.ts';

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

/**
 * word/document.xml whose text run holds `megabytes` MB of spaces. A full flush resets the compressor, so
 * one flushed 1 MB block is byte-for-byte what every further MB compresses to: the 300 MB part is built by
 * repetition in milliseconds (jszip takes 5–20 s to deflate it here) and the test never holds it inflated.
 */
export function bombPart(megabytes: number): ZipEntry {
  const head = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="${W}"><w:body><w:p><w:r><w:t>`);
  const tail = Buffer.from('</w:t></w:r></w:p></w:body></w:document>');
  const spaces = Buffer.alloc(MB, 0x20);
  const flushed = (bytes: Buffer) => deflateRawSync(bytes, { level: 9, finishFlush: zlibConstants.Z_FULL_FLUSH });
  const block = flushed(spaces);
  let crc = crc32(head);
  for (let index = 0; index < megabytes; index += 1) crc = crc32(spaces, crc);
  crc = crc32(tail, crc);
  const deflated = Buffer.concat([flushed(head), ...Array.from({ length: megabytes }, () => block), deflateRawSync(tail)]);
  return { name: 'word/document.xml', method: 8, data: deflated, crc, size: head.length + megabytes * MB + tail.length };
}

/** A DOCX package (content types, relationships, main part) around the given main part. */
export type { ZipEntry };

export function makeDocx(main: ZipEntry): Buffer {
  return writeZip([
    deflatedEntry('[Content_Types].xml', CONTENT_TYPES),
    deflatedEntry('_rels/.rels', ROOT_RELS),
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
