/**
 * PDF: one section per page, numbered from 1, via pdf-parse 2 (pdf.js). pdf.js runs synchronously in the
 * thread that calls it and a hostile PDF can make one page arbitrarily expensive, so each file is parsed in
 * its own worker thread with a heap cap and a wall-clock limit; the thread is terminated on every path
 * (success, error, timeout, abort), which also releases everything pdf.js allocated.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { IngestError, type DocumentSection, type ParsedDocument } from '../document.ts';
import type { DocumentParser } from './common.ts';
import { PDF_WORKER_SOURCE } from './pdf-worker-script.ts';

export interface PdfLimits {
  /** PDFs with more pages are refused (not truncated: a silently partial knowledge base is worse). */
  maxPages: number;
  /** Wall-clock budget for one file, worker start-up included. */
  timeoutMs: number;
  /** V8 heap cap of the worker thread. */
  maxHeapMb: number;
}

/** The smallest heap a parsing thread gets, whatever the limit asks. */
export const MIN_WORKER_HEAP_MB = 8;

export const DEFAULT_PDF_LIMITS: PdfLimits = { maxPages: 5_000, timeoutMs: 120_000, maxHeapMb: 512 };

/**
 * Resolved on first use, not at import: this module is also loaded by the parse-and-chunk worker threads, and
 * a top-level `import.meta.resolve` there made the TypeScript loader (tsx, in tests) refuse the whole module graph.
 */
let pdfParseUrl: string | undefined;
function resolvePdfParse(): string {
  // tsx (tests, dev) provides no import.meta.resolve inside worker threads; Node's require resolution finds the
  // package's CommonJS build there, which exports the same PDFParse.
  pdfParseUrl ??= typeof import.meta.resolve === 'function' ? import.meta.resolve('pdf-parse') : pathToFileURL(createRequire(import.meta.url).resolve('pdf-parse')).href;
  return pdfParseUrl;
}

type WorkerReply =
  | { ok: true; pages: Array<{ num: number; text: string }> }
  | { ok: false; kind: 'password' | 'invalid' | 'too_many_pages' | 'no_pages'; message: string; total?: number };

function invalid(message: string, cause?: unknown): IngestError {
  return new IngestError('invalid_file', message, cause === undefined ? undefined : { cause });
}

export class PdfParser implements DocumentParser {
  private readonly limits: PdfLimits;

  constructor(limits: Partial<PdfLimits> = {}) {
    this.limits = { ...DEFAULT_PDF_LIMITS, ...limits };
  }

  async parse(bytes: Buffer, _filename: string, signal?: AbortSignal): Promise<ParsedDocument> {
    const reply = await this.runWorker(bytes, signal);
    if (!reply.ok) throw this.replyError(reply);
    const sections: DocumentSection[] = reply.pages.map((page) => ({ page: page.num, text: page.text }));
    if (sections.every((section) => section.text.trim() === '')) {
      throw invalid('The PDF has no extractable text (scanned images need OCR, which Cairn does not do)');
    }
    return { format: 'pdf', sections };
  }

  private replyError(reply: Extract<WorkerReply, { ok: false }>): IngestError {
    switch (reply.kind) {
      case 'password':
        return invalid('The PDF is encrypted with a password; remove the password and upload it again');
      case 'too_many_pages':
        return invalid(`The PDF has ${reply.total} pages; Cairn ingests at most ${this.limits.maxPages} pages per file`);
      case 'no_pages':
        return invalid(reply.message);
      default:
        return invalid(`The file could not be parsed as PDF: ${reply.message}`);
    }
  }

  private heapMb(): number {
    return Math.max(MIN_WORKER_HEAP_MB, this.limits.maxHeapMb);
  }

  private async runWorker(bytes: Buffer, signal: AbortSignal | undefined): Promise<WorkerReply> {
    signal?.throwIfAborted();
    // A private copy: its buffer is moved to the worker, and the caller's Buffer may be a pooled slice.
    const copy = new Uint8Array(bytes);
    const worker = new Worker(PDF_WORKER_SOURCE, {
      eval: true,
      workerData: { moduleUrl: resolvePdfParse(), bytes: copy, maxPages: this.limits.maxPages },
      transferList: [copy.buffer],
      // Never below 8 MB: under ~3 MB Node 24 cannot even deserialize the worker's snapshot and aborts the whole process.
      resourceLimits: { maxOldGenerationSizeMb: this.heapMb() },
      // pdf.js prints warnings about damaged files; they must not end up in Cairn's JSON log stream.
      stdout: true,
      stderr: true,
    });
    worker.stdout.resume();
    worker.stderr.resume();

    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      return await new Promise<WorkerReply>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', (error: NodeJS.ErrnoException) => {
          if (error.code === 'ERR_WORKER_OUT_OF_MEMORY') {
            reject(invalid(`The PDF needs more than ${this.heapMb()} MB of memory to parse`, error));
          } else reject(invalid(`The file could not be parsed as PDF: ${error.message}`, error));
        });
        worker.once('exit', (code) => reject(invalid(`The file could not be parsed as PDF: the parser stopped (exit code ${code})`)));
        timer = setTimeout(
          () => reject(invalid(`Parsing the PDF took longer than ${this.limits.timeoutMs / 1000} s; it was stopped`)),
          this.limits.timeoutMs,
        );
        onAbort = () => reject(signal?.reason);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      await worker.terminate();
    }
  }
}
