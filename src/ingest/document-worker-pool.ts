/**
 * Parsing and chunking off the API's event loop. Every file is parsed and chunked in a worker thread of one
 * pool (piscina) sized to the cores, under a heap cap and a wall-clock limit: embedded mode ingests inside the
 * API process, and a 90 MB CSV parsed on the main thread blocked `/healthz` for 82 s. The pool leaves one
 * core to the event loop. A thread that runs out
 * of heap or time is terminated (piscina replaces it) and the file fails with a `last_error` that says why.
 * Chunks come back in batches as they are made (see `chunk-file-task.ts`).
 */
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import type { Logger } from 'pino';
import { Piscina } from 'piscina';
import type { ChunkingOptions } from './chunker.ts';
import type { ChunkFileReply, ChunkFileTask } from './chunk-file-task.ts';
import { IngestError, type Chunk } from './document.ts';
import { DEFAULT_FORMAT_LIMITS, type FormatLimits } from './parsers/limits.ts';

export interface DocumentWorkerLimits extends FormatLimits {
  /** Threads in the pool; default the number of cores minus one (at least one). */
  threads: number;
  /** V8 heap cap of each thread (MB). */
  maxHeapMb: number;
  /** Wall-clock budget to parse and chunk one file, any wait for a free thread included. */
  timeoutMs: number;
}

export const DEFAULT_DOCUMENT_WORKER_LIMITS: DocumentWorkerLimits = {
  ...DEFAULT_FORMAT_LIMITS,
  // One core stays with the event loop (and Qdrant): with every core parsing, a 2-core embedded server
  // answered /healthz in up to 1.2 s while three 90 MB files ingested.
  threads: Math.max(1, availableParallelism() - 1),
  maxHeapMb: 1024,
  timeoutMs: 600_000,
};

/** The task module beside this one: `.ts` under tsx (tests, dev), `.js` in `dist/`. */
const here = fileURLToPath(import.meta.url);
const TASK_FILE = new URL(`./chunk-file-task${path.extname(here)}`, import.meta.url).href;

/** Threads left idle this long exit, so an idle server does not keep their heaps (and tokenizers). */
const IDLE_THREAD_MS = 30_000;

export class DocumentWorkerPool {
  private readonly pool: Piscina;
  private readonly limits: DocumentWorkerLimits;

  constructor(limits: Partial<DocumentWorkerLimits> = {}, logger?: Logger) {
    this.limits = { ...DEFAULT_DOCUMENT_WORKER_LIMITS, ...limits };
    this.pool = new Piscina({
      filename: TASK_FILE,
      minThreads: 0,
      maxThreads: this.limits.threads,
      idleTimeout: IDLE_THREAD_MS,
      resourceLimits: { maxOldGenerationSizeMb: this.limits.maxHeapMb },
    });
    // A thread that dies also rejects the task it ran (handled in chunkFile); piscina re-emits the error here,
    // and an unheard 'error' event would end the process.
    this.pool.on('error', (error: unknown) => logger?.warn({ err: error }, 'a parse-and-chunk thread failed'));
  }

  /**
   * Parses `bytes` and chunks it with `chunking`. Throws `IngestError` for a file that cannot be ingested.
   * `bytes` is consumed: a Buffer that owns its memory is moved to the thread (and is empty afterwards).
   */
  async chunkFile(bytes: Buffer, filename: string, chunking: ChunkingOptions, signal?: AbortSignal): Promise<Chunk[]> {
    signal?.throwIfAborted();
    const { port1, port2 } = new MessageChannel();
    const chunks: Chunk[] = [];
    let expected = Infinity;
    let allArrived: () => void = () => undefined;
    const arrived = new Promise<void>((resolve) => (allArrived = resolve));
    port1.on('message', (batch: Chunk[]) => {
      for (const chunk of batch) chunks.push(chunk);
      if (chunks.length >= expected) allArrived();
    });

    // Moved to the thread without a copy when the Buffer owns its memory (a file read whole does), which leaves
    // the caller's Buffer empty; a slice of a shared pool is copied first.
    const copy = ownsItsMemory(bytes) ? bytes : new Uint8Array(bytes);
    const { maxHeapMb, timeoutMs, maxCsvRows, maxJsonValues, maxPdfPages, maxChunks } = this.limits;
    const limits = { maxCsvRows, maxJsonValues, maxPdfPages, maxChunks };
    const task: ChunkFileTask = { bytes: copy, filename, chunking, limits, port: port2 };
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const reply = (await this.pool
        .run(task, { transferList: [copy.buffer as ArrayBuffer, port2], signal: firstOf(timeout, signal) })
        .catch((error: NodeJS.ErrnoException) => {
          if (signal?.aborted) throw signal.reason;
          if (timeout.aborted) throw new IngestError('invalid_file', `Parsing and chunking the file took longer than ${timeoutMs / 1000} s; it was stopped`);
          if (error.code === 'ERR_WORKER_OUT_OF_MEMORY') {
            throw new IngestError('invalid_file', `The file needs more than ${maxHeapMb} MB of memory to parse and chunk`, { cause: error });
          }
          throw error;
        })) as ChunkFileReply;
      if (!reply.ok) throw new IngestError(reply.code, reply.message);
      expected = reply.chunks;
      if (chunks.length < expected) await arrived;
      return chunks;
    } finally {
      port1.close();
    }
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

function ownsItsMemory(bytes: Buffer): boolean {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
}

/** The caller's signal, or the timeout, whichever comes first. */
function firstOf(timeout: AbortSignal, signal: AbortSignal | undefined): AbortSignal {
  return signal ? AbortSignal.any([timeout, signal]) : timeout;
}
