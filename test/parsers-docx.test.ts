import assert from 'node:assert/strict';
import { once } from 'node:events';
import { before, describe, it } from 'node:test';
import { crc32, createDeflateRaw } from 'node:zlib';
import JSZip from 'jszip';
import mammoth from 'mammoth';
import { IngestError } from '../src/ingest/document.ts';
import { DocxParser } from '../src/ingest/parsers/docx.ts';
import { parseDocument } from '../src/ingest/parsers/index.ts';
import { deflatedEntry, writeZip, type ZipEntry } from './helpers/zip.ts';

const W = 'http://schemas.openxmlformats.org/wordprocessingml/2006/main';
const CONTENT_TYPES = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
  <Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
  <Default Extension="xml" ContentType="application/xml"/>
  <Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
  <Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>
</Types>`;
const ROOT_RELS = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
  <Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>
</Relationships>`;
const STYLES = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:styles xmlns:w="${W}">
  <w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style>
  <w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style>
</w:styles>`;

function paragraph(text: string, style?: string): string {
  const properties = style ? `<w:pPr><w:pStyle w:val="${style}"/></w:pPr>` : '';
  return `<w:p>${properties}<w:r><w:t xml:space="preserve">${text}</w:t></w:r></w:p>`;
}

function documentXml(body: string): string {
  return `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="${W}"><w:body>${body}</w:body></w:document>`;
}

/** A real DOCX package, built the way Word lays it out (DEFLATE-compressed parts). */
async function makeDocx(body: string, extra: Record<string, Buffer> = {}): Promise<Buffer> {
  const zip = new JSZip();
  zip.file('[Content_Types].xml', CONTENT_TYPES);
  zip.file('_rels/.rels', ROOT_RELS);
  zip.file('word/styles.xml', STYLES);
  zip.file('word/document.xml', documentXml(body));
  for (const [name, data] of Object.entries(extra)) zip.file(name, data);
  return zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE' });
}

const SAMPLE_BODY = [
  paragraph('Before the first heading.'),
  paragraph('Moraines', 'Heading1'),
  paragraph('A moraine is debris left by a glacier.'),
  paragraph('Second body paragraph &amp; more.'),
  paragraph('Lateral moraines', 'Heading2'),
  paragraph('They form along the sides.'),
].join('');

/** Deflates `size` bytes of spaces in 1 MB steps: a real bomb without holding it in memory. */
async function deflatedSpaces(size: number): Promise<ZipEntry> {
  const chunk = Buffer.alloc(1024 * 1024, 0x20);
  const deflate = createDeflateRaw({ level: 9 });
  const parts: Buffer[] = [];
  deflate.on('data', (part: Buffer) => parts.push(part));
  let crc = 0;
  for (let written = 0; written < size; written += chunk.length) {
    const piece = chunk.subarray(0, Math.min(chunk.length, size - written));
    crc = crc32(piece, crc);
    if (!deflate.write(piece)) await once(deflate, 'drain');
  }
  deflate.end();
  await once(deflate, 'end');
  return { name: 'word/document.xml', method: 8, data: Buffer.concat(parts), crc, size };
}

async function rejectsWith(promise: Promise<unknown>, code: IngestError['code'], fragment: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof IngestError, `expected IngestError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.ok(error.message.includes(fragment), `message: ${error.message}`);
    return true;
  });
}

describe('DOCX parsing', () => {
  it('the test DOCX is one mammoth accepts as it is', async () => {
    const html = (await mammoth.convertToHtml({ buffer: await makeDocx(SAMPLE_BODY) })).value;
    assert.match(html, /<h1>Moraines<\/h1>/);
  });

  it('Word headings become section titles', async () => {
    const doc = await parseDocument(await makeDocx(SAMPLE_BODY), 'moraines.docx');
    assert.deepEqual(doc, {
      format: 'docx',
      sections: [
        { text: 'Before the first heading.' },
        { title: 'Moraines', text: 'Moraines\n\nA moraine is debris left by a glacier.\n\nSecond body paragraph & more.' },
        { title: 'Lateral moraines', text: 'Lateral moraines\n\nThey form along the sides.' },
      ],
    });
  });

  it('media are neither inflated nor counted against the XML limit', async () => {
    const docx = await makeDocx(SAMPLE_BODY, { 'word/media/photo.bin': Buffer.alloc(4 * 1024 * 1024, 7) });
    const doc = await new DocxParser({ maxXmlBytes: 64 * 1024 }).parse(docx, 'photo.docx');
    assert.equal(doc.sections[1]?.title, 'Moraines');
  });

  it('a ZIP that is not a DOCX is unsupported_file; a damaged DOCX is invalid_file', async () => {
    const zip = new JSZip();
    zip.file('notes.txt', 'hello');
    await rejectsWith(parseDocument(await zip.generateAsync({ type: 'nodebuffer' }), 'notes.zip'), 'unsupported_file', 'ZIP archive that is not a DOCX document (.zip)');
    const docx = await makeDocx(SAMPLE_BODY);
    await rejectsWith(parseDocument(docx.subarray(0, docx.length - 40), 'cut.docx'), 'invalid_file', 'could not be read as DOCX');
    const notXml = writeZip([deflatedEntry('word/document.xml', '<w:document><unclosed')]);
    await rejectsWith(parseDocument(notXml, 'bad.docx'), 'invalid_file', 'could not be parsed as DOCX: ');
  });

  it('deeply nested XML (mammoth recurses) is invalid_file, not a crash', async () => {
    const nested = `${'<w:sdt><w:sdtContent>'.repeat(5000)}${paragraph('deep')}${'</w:sdtContent></w:sdt>'.repeat(5000)}`;
    await rejectsWith(parseDocument(await makeDocx(nested), 'deep.docx'), 'invalid_file', 'The DOCX is nested too deeply to read');
  });

  describe('zip bombs', () => {
    let bomb: ZipEntry;
    before(async () => {
      bomb = await deflatedSpaces(300 * 1024 * 1024);
      assert.ok(bomb.data.length < 1024 * 1024, `300 MB compress to ${bomb.data.length} bytes`);
    });

    it('a 300 MB document.xml is refused from its declared size, before any inflation', async () => {
      const zip = writeZip([deflatedEntry('[Content_Types].xml', CONTENT_TYPES), bomb]);
      const started = Date.now();
      await rejectsWith(parseDocument(zip, 'bomb.docx'), 'invalid_file', 'The DOCX expands to 300 MB of XML, over the 50 MB limit');
      assert.ok(Date.now() - started < 200, `took ${Date.now() - started} ms`);
    });

    it('a part that lies about its size is refused after inflating no more than it declared', async () => {
      const liar = writeZip([deflatedEntry('[Content_Types].xml', CONTENT_TYPES), { ...bomb, declaredSize: 1000 }]);
      const started = Date.now();
      await rejectsWith(parseDocument(liar, 'liar.docx'), 'invalid_file', 'word/document.xml declares 1000 bytes but holds more');
      assert.ok(Date.now() - started < 200, `took ${Date.now() - started} ms`);
      const shortLiar = writeZip([{ ...deflatedEntry('word/document.xml', documentXml(SAMPLE_BODY)), declaredSize: 40_000 }]);
      await rejectsWith(parseDocument(shortLiar, 'liar.docx'), 'invalid_file', 'declares 40000 bytes but holds');
    });

    it('a moderately large real bomb over a configured cap is refused the same way', async () => {
      const five = await deflatedSpaces(5 * 1024 * 1024);
      await rejectsWith(new DocxParser({ maxXmlBytes: 1024 * 1024 }).parse(writeZip([five]), 'b.docx'), 'invalid_file', 'expands to 5 MB of XML, over the 1 MB limit');
    });
  });
});
