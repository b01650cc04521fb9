import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import PDFDocument from 'pdfkit';
import { IngestError } from '../src/ingest/document.ts';
import { parseDocument } from '../src/ingest/parsers/index.ts';
import { PdfParser } from '../src/ingest/parsers/pdf.ts';

/** A real PDF written by pdfkit. */
function makePdf(draw: (doc: PDFKit.PDFDocument) => void, options: PDFKit.PDFDocumentOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const doc = new PDFDocument({ compress: true, ...options });
    const parts: Buffer[] = [];
    doc.on('data', (part: Buffer) => parts.push(part));
    doc.on('end', () => resolve(Buffer.concat(parts)));
    doc.on('error', reject);
    draw(doc);
    doc.end();
  });
}

const threePages = (doc: PDFKit.PDFDocument): void => {
  doc.text('Alpha page talks about glaciers.');
  doc.addPage().text('Beta page talks about moraines.');
  doc.addPage().text('Gamma page talks about cairns.');
};

async function rejectsWith(promise: Promise<unknown>, code: IngestError['code'], fragment: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof IngestError, `expected IngestError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.ok(error.message.includes(fragment), `message: ${error.message}`);
    return true;
  });
}

describe('PDF parsing', () => {
  it('gives one section per page with 1-based page numbers', async () => {
    const doc = await parseDocument(await makePdf(threePages), 'glaciers.pdf');
    assert.equal(doc.format, 'pdf');
    assert.deepEqual(
      doc.sections.map((section) => ({ page: section.page, text: section.text.trim() })),
      [
        { page: 1, text: 'Alpha page talks about glaciers.' },
        { page: 2, text: 'Beta page talks about moraines.' },
        { page: 3, text: 'Gamma page talks about cairns.' },
      ],
    );
  });

  it('keeps page numbers when a middle page is blank (the blank section is dropped)', async () => {
    const pdf = await makePdf((doc) => {
      doc.text('first');
      doc.addPage().rect(50, 50, 100, 100).fill('#333');
      doc.addPage().text('third');
    });
    const doc = await parseDocument(pdf, 'gap.pdf');
    assert.deepEqual(doc.sections.map((section) => [section.page, section.text.trim()]), [[1, 'first'], [3, 'third']]);
  });

  it('a PDF with only drawings (like a scan) has no extractable text', async () => {
    const pdf = await makePdf((doc) => doc.rect(10, 10, 200, 300).fill('#f00'));
    await rejectsWith(parseDocument(pdf, 'scan.pdf'), 'invalid_file', 'The PDF has no extractable text (scanned images need OCR');
  });

  it('an encrypted PDF is invalid_file with a precise message', async () => {
    const pdf = await makePdf((doc) => doc.text('secret'), { userPassword: 'hunter2' });
    await rejectsWith(parseDocument(pdf, 'locked.pdf'), 'invalid_file', 'The PDF is encrypted with a password');
  });

  it('a truncated PDF and random bytes named .pdf cannot be parsed as PDF', async () => {
    const pdf = await makePdf(threePages);
    await rejectsWith(parseDocument(pdf.subarray(0, Math.floor(pdf.length / 2)), 'cut.pdf'), 'invalid_file', 'could not be parsed as PDF: ');
    const random = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 2654435761) % 251));
    await rejectsWith(parseDocument(random, 'random.pdf'), 'invalid_file', 'could not be parsed as PDF: ');
  });

  it('refuses a PDF over the page limit before parsing it all', async () => {
    const pdf = await makePdf(threePages);
    await rejectsWith(parseDocument(pdf, 'long.pdf', { maxPdfPages: 2 }), 'invalid_file', 'The PDF has 3 pages; Cairn ingests at most 2 pages per file');
    assert.equal((await parseDocument(pdf, 'long.pdf', { maxPdfPages: 3 })).sections.length, 3);
  });

  it('stops at the time limit and on abort (the worker is terminated either way)', async () => {
    const pdf = await makePdf(threePages);
    await rejectsWith(new PdfParser({ timeoutMs: 1 }).parse(pdf, 'slow.pdf'), 'invalid_file', 'took longer than 0.001 s');
    const controller = new AbortController();
    const parsing = new PdfParser().parse(pdf, 'a.pdf', controller.signal);
    controller.abort(new Error('cancelled by user'));
    await assert.rejects(parsing, /cancelled by user/);
  });

  it('a PDF that needs more heap than the worker may use is invalid_file', async () => {
    await rejectsWith(new PdfParser({ maxHeapMb: 8 }).parse(await makePdf(threePages), 'big.pdf'), 'invalid_file', 'The PDF needs more than 8 MB of memory');
  });

  it('does not detach or modify the caller’s buffer', async () => {
    const pdf = await makePdf(threePages);
    const before = Buffer.from(pdf);
    await parseDocument(pdf, 'same.pdf');
    assert.ok(pdf.equals(before));
  });
});
