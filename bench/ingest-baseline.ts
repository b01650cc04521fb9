/**
 * Child process of bench/ingest.ts: the in-process baseline. The same files go straight through
 * Cairn's real modules, parseDocument → resolveChunking/chunkDocument (WordPieceTokenCounter) →
 * embed (the LocalEmbedder via EmbeddingModels, dense mode only) → Bm25Encoder → QdrantChunkStore.upsert,
 * with no HTTP, no queue, no Postgres and no blob store. `concurrency` lanes take documents in turn,
 * as the worker's `concurrency` jobs do. Two variants, each into its own collection:
 *
 *   batched   chunks are gathered across documents into upserts of `batchSize` (the pipeline's
 *             default 64): what the embed + BM25 + Qdrant path can do when fed in full batches.
 *             This is the baseline of the overhead ratio.
 *   per-file  the pipeline's Qdrant call pattern: each document's chunks upserted on their own
 *             (in batches of `batchSize`, `ready: false`), then, as the pipeline does after every
 *             file, markReady (set-payload by filter) and the stale-generation delete-by-filter, all
 *             with wait=true. Diagnostic only: it separates what Qdrant's per-file round trips cost
 *             from what HTTP, the queue and Postgres cost.
 *
 * Models and the tokenizer are loaded before the clock starts (their load time is reported apart).
 * Environment: BENCH_QDRANT_URL, BENCH_CORPUS, BENCH_LIMIT, BENCH_MODE (lexical | dense),
 * BENCH_MODELS_DIR and BENCH_MODEL_ID (dense), BENCH_CONCURRENCY, BENCH_BATCH_SIZE,
 * BENCH_VARIANTS (default batched,per-file). Prints one JSON line `{"baseline":…}` on stdout.
 */
import { randomUUID } from 'node:crypto';
import { chunkDocument, resolveChunking } from '../src/ingest/chunker.ts';
import type { Chunk } from '../src/ingest/document.ts';
import { parseDocument } from '../src/ingest/parsers/index.ts';
import { WordPieceTokenCounter } from '../src/ingest/token-counter.ts';
import { EmbeddingModels } from '../src/embeddings/embedding-models.ts';
import type { Embedder } from '../src/embeddings/embedder.ts';
import { Bm25Encoder } from '../src/vectors/bm25-encoder.ts';
import { QdrantChunkStore, type ChunkPoint } from '../src/vectors/qdrant-chunk-store.ts';
import { loadCorpus, type CorpusFile } from './ingest-common.ts';

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
};
const mode = env('BENCH_MODE', 'lexical');
if (mode !== 'lexical' && mode !== 'dense') throw new Error(`BENCH_MODE must be lexical or dense, not ${mode}`);
const concurrency = Number(env('BENCH_CONCURRENCY', '2'));
const batchSize = Number(env('BENCH_BATCH_SIZE', '64'));
const variants = env('BENCH_VARIANTS', 'batched,per-file').split(',').filter(Boolean);
const files = loadCorpus(env('BENCH_CORPUS'), Number(env('BENCH_LIMIT', 'Infinity')));
const chunkStore = new QdrantChunkStore({ url: env('BENCH_QDRANT_URL') });

const loadStarted = performance.now();
let embedder: Embedder | undefined;
let embeddings: EmbeddingModels | undefined;
if (mode === 'dense') {
  const modelId = env('BENCH_MODEL_ID');
  embeddings = new EmbeddingModels({
    configs: [{ id: modelId, provider: 'local', source: modelId, dtype: 'q8', max_batch_size: 32 }], // the defaults of a config entry
    defaultModelId: 'none',
    modelsDir: env('BENCH_MODELS_DIR'),
    allowDownload: false,
  });
  embedder = embeddings.get(modelId)!;
}
const dimensions = embedder ? await embedder.dimensions() : null;
const sizes = resolveChunking({ type: 'auto' }, embedder ? await embedder.maxInputTokens() : undefined);
await WordPieceTokenCounter.load(); // warm the module and file cache; each variant loads its own (fresh memo)
const loadMs = performance.now() - loadStarted;

interface VariantResult {
  name: string;
  docs: number;
  chunks: number;
  ms: number;
  /** Summed over the lanes (they overlap): where each lane spent its time. */
  parseChunkMs: number;
  embedMs: number;
  bm25Ms: number;
  upsertMs: number;
  markReadyMs: number;
  deleteMs: number;
  /** Qdrant write calls (upserts, plus per file a publish and a delete in the per-file variant). */
  qdrantCalls: number;
}

const projectId = 'proj_bench_baseline';
const generation = randomUUID();

async function runVariant(name: string): Promise<VariantResult> {
  const counter = await WordPieceTokenCounter.load();
  const bm25 = new Bm25Encoder();
  const kbId = `kb_bench_${name}`;
  const collection = `bench_baseline_${mode}_${name.replace(/\W/g, '_')}`;
  await chunkStore.ensureCollection(collection, dimensions);
  const result: VariantResult = { name, docs: 0, chunks: 0, ms: 0, parseChunkMs: 0, embedMs: 0, bm25Ms: 0, upsertMs: 0, markReadyMs: 0, deleteMs: 0, qdrantCalls: 0 };

  async function chunksOf(file: CorpusFile): Promise<Chunk[]> {
    const started = performance.now();
    const doc = await parseDocument(file.bytes, file.filename);
    const chunks = chunkDocument(doc, sizes, counter);
    result.parseChunkMs += performance.now() - started;
    result.docs += 1;
    result.chunks += chunks.length;
    return chunks;
  }

  async function store(batch: Array<{ file: CorpusFile; chunk: Chunk }>): Promise<void> {
    let started = performance.now();
    const dense = embedder ? (await embedder.embed(batch.map(({ chunk }) => chunk.text))).vectors : undefined;
    result.embedMs += performance.now() - started;
    started = performance.now();
    const points: ChunkPoint[] = batch.map(({ file, chunk }, i) => ({
      id: chunkStore.pointId(kbId, file.id, chunk.index),
      dense: dense?.[i],
      sparse: bm25.encodeDocument(chunk.text),
      payload: {
        project_id: projectId,
        kb_id: kbId,
        file_id: file.id,
        filename: file.filename,
        chunk_index: chunk.index,
        generation,
        // The batched variant writes the final state at once; per-file publishes afterwards, as the pipeline does.
        ready: name === 'batched',
        text: chunk.text,
        page_start: chunk.pageStart,
        page_end: chunk.pageEnd,
        title: chunk.title,
        char_start: chunk.charStart,
        char_end: chunk.charEnd,
        attributes: {},
      },
    }));
    result.bm25Ms += performance.now() - started;
    started = performance.now();
    await chunkStore.upsert(collection, points);
    result.upsertMs += performance.now() - started;
    result.qdrantCalls += 1;
  }

  let next = 0;
  const lane = async (): Promise<void> => {
    const pending: Array<{ file: CorpusFile; chunk: Chunk }> = [];
    for (let i = next++; i < files.length; i = next++) {
      const file = files[i]!;
      const chunks = await chunksOf(file);
      if (name === 'batched') {
        pending.push(...chunks.map((chunk) => ({ file, chunk })));
        while (pending.length >= batchSize) await store(pending.splice(0, batchSize));
      } else {
        for (let start = 0; start < chunks.length; start += batchSize) {
          await store(chunks.slice(start, start + batchSize).map((chunk) => ({ file, chunk })));
        }
        let started = performance.now();
        await chunkStore.markReady(collection, { projectId, kbId, fileId: file.id, generation });
        result.markReadyMs += performance.now() - started;
        started = performance.now();
        await chunkStore.deleteFile(collection, { projectId, kbId, fileId: file.id, keepGeneration: generation });
        result.deleteMs += performance.now() - started;
        result.qdrantCalls += 2;
      }
    }
    if (pending.length > 0) await store(pending.splice(0));
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, lane));
  result.ms = performance.now() - started;
  const stored = await chunkStore.count(collection, { projectId, kbId });
  if (stored !== result.chunks) throw new Error(`baseline ${name}: Qdrant holds ${stored} points, expected ${result.chunks}`);
  return result;
}

const results: VariantResult[] = [];
for (const name of variants) {
  if (name !== 'batched' && name !== 'per-file') throw new Error(`unknown variant ${name}`);
  results.push(await runVariant(name));
}
await embeddings?.close();
process.stdout.write(`${JSON.stringify({ baseline: { mode, loadMs, dimensions, maxTokens: sizes.maxTokens, overlapTokens: sizes.overlapTokens, variants: results } })}\n`);
process.exit(0);
