/** Small real documents for ingestion tests. */
import PDFDocument from 'pdfkit';

/** A PDF written by a real PDF writer, one string per page. */
export function makePdf(pages: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const doc = new PDFDocument({ autoFirstPage: false });
    const chunks: Buffer[] = [];
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
    for (const text of pages) {
      doc.addPage();
      doc.fontSize(12).text(text);
    }
    doc.end();
  });
}

/** Prose long enough to make many chunks, with a marker sentence per paragraph. */
export function longText(paragraphs: number, topic = 'lighthouse'): string {
  return Array.from(
    { length: paragraphs },
    (_, i) => `Paragraph ${i} about the ${topic}. ` + 'The keeper climbed the stairs every evening to light the lamp above the rocks. '.repeat(12),
  ).join('\n\n');
}
