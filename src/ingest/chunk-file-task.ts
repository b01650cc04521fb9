/**
 * What one worker thread of the `DocumentWorkerPool` runs for one file: parse it and chunk it, section by
 * section, and post the chunks back in batches on the task's own port, so the thread never holds the whole
 * document, its joined text or all of its chunks, and the API thread receives small messages it can
 * deserialise between requests. Plain data in, plain data out: an `IngestError` cannot cross a thread as
 * itself, so it comes back as `{ ok: false, code, message }`.
 */
import type { MessagePort } from 'node:worker_threads';
import { SectionChunker, type ChunkingOptions } from './chunker.ts';
import { IngestError, type Chunk, type IngestErrorCode } from './document.ts';
import { openDocument } from './parsers/index.ts';
import type { FormatLimits } from './parsers/limits.ts';
import { overLimit } from './parsers/limits.ts';
import { WordPieceTokenCounter } from './token-counter.ts';

export interface ChunkFileTask {
  /** The file's bytes, moved (not copied) into the thread. */
  bytes: Uint8Array;
  filename: string;
  chunking: ChunkingOptions;
  limits: FormatLimits;
  /** Receives `Chunk[]` batches, in order; the API side closes it (closing here could drop batches in flight). */
  port: MessagePort;
}

export type ChunkFileReply = { ok: true; format: string; chunks: number } | { ok: false; code: IngestErrorCode; message: string };

/** Chunks per message: ~1 MB of text, a millisecond or two to deserialise on the API thread. */
const BATCH_CHUNKS = 512;

// One tokenizer per thread, loaded by its first task and kept while the thread lives (its word memo is what
// makes counting fast). Thread-local by construction: nothing else shares it.
let counterLoad: Promise<WordPieceTokenCounter> | undefined;

export default async function chunkFile(task: ChunkFileTask): Promise<ChunkFileReply> {
  const { port, limits } = task;
  try {
    const bytes = Buffer.from(task.bytes.buffer, task.bytes.byteOffset, task.bytes.byteLength);
    const document = openDocument(bytes, task.filename, {
      maxCsvRows: limits.maxCsvRows,
      maxJsonValues: limits.maxJsonValues,
      maxPdfPages: limits.maxPdfPages,
    });
    const counter = await (counterLoad ??= WordPieceTokenCounter.load());
    let batch: Chunk[] = [];
    const chunker = new SectionChunker(task.chunking, counter, (chunk) => {
      if (chunk.index >= limits.maxChunks) throw new IngestError('invalid_file', overLimit('file', limits.maxChunks, 'chunks'));
      batch.push(chunk);
      if (batch.length >= BATCH_CHUNKS) {
        port.postMessage(batch);
        batch = [];
      }
    });
    for await (const section of document.sections) chunker.add(section);
    chunker.end();
    if (batch.length > 0) port.postMessage(batch);
    return { ok: true, format: document.format, chunks: chunker.count };
  } catch (error) {
    if (error instanceof IngestError) return { ok: false, code: error.code, message: error.message };
    throw error;
  }
}
