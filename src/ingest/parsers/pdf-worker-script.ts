/**
 * The code the PDF worker thread runs, as plain JavaScript source for `new Worker(code, { eval: true })`.
 * Kept as a string so the same code runs under tsx (tests) and from `dist/` (production) without a
 * TypeScript loader in the worker or a build step that copies .js files.
 *
 * It posts exactly one message: `{ ok: true, pages: [{ num, text }] }` or `{ ok: false, kind, message, total? }`
 * with kind `password` | `invalid` | `too_many_pages` | `no_pages`.
 */
export const PDF_WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');

function kindOf(error) {
  if (error && error.name === 'PasswordException') return 'password';
  return 'invalid';
}

(async () => {
  const { PDFParse } = await import(workerData.moduleUrl);
  // isEvalSupported: false keeps pdf.js from compiling code out of PDF content (defence in depth).
  const parser = new PDFParse({ data: workerData.bytes, isEvalSupported: false, verbosity: 0, useSystemFonts: false });
  try {
    // Page 1 alone first: it tells the page count, so an oversized PDF is refused before the long work.
    const first = await parser.getText({ partial: [1] });
    if (first.total === 0) return parentPort.postMessage({ ok: false, kind: 'no_pages', message: 'The PDF has no pages' });
    if (first.total > workerData.maxPages) {
      return parentPort.postMessage({ ok: false, kind: 'too_many_pages', total: first.total, message: '' });
    }
    const pages = first.pages.map((page) => ({ num: page.num, text: page.text }));
    if (first.total > 1) {
      const rest = await parser.getText({ first: 2, last: first.total });
      for (const page of rest.pages) pages.push({ num: page.num, text: page.text });
    }
    parentPort.postMessage({ ok: true, pages });
  } catch (error) {
    parentPort.postMessage({ ok: false, kind: kindOf(error), message: String((error && error.message) || error) });
  } finally {
    await parser.destroy().catch(() => undefined);
  }
})().catch((error) => {
  parentPort.postMessage({ ok: false, kind: 'invalid', message: String((error && error.message) || error) });
});
`;
