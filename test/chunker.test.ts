import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import {
  AUTO_MAX_TOKENS,
  chunkDocument,
  type ChunkingOptions,
  EMBEDDER_RESERVED_TOKENS,
  InvalidChunkingStrategyError,
  MAX_CHARS_PER_TOKEN,
  resolveChunking,
} from '../src/ingest/chunker.ts';
import type { Chunk, DocumentSection, ParsedDocument } from '../src/ingest/document.ts';
import { InvalidRequestError } from '../src/errors.ts';
import { WordPieceTokenCounter } from '../src/ingest/token-counter.ts';

let counter: WordPieceTokenCounter;
before(async () => {
  counter = await WordPieceTokenCounter.load();
});

const WORDS = ('retrieval augmented generation combines a search engine with a language model so that answers cite ' +
  'their sources while the index stays fresh because documents are chunked embedded and stored in a vector database ' +
  'operators tune chunk sizes overlap and ranking to balance precision recall latency and cost').split(' ');

/** Deterministic text: `paragraphs` paragraphs of `sentences` sentences of 8–19 words. */
function prose(paragraphs: number, sentences: number, seed = 1): string {
  let state = seed;
  const next = (): number => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state >>> 8;
  };
  const out: string[] = [];
  for (let p = 0; p < paragraphs; p++) {
    const sentenceList: string[] = [];
    for (let s = 0; s < sentences; s++) {
      const words = Array.from({ length: 8 + (next() % 12) }, () => WORDS[next() % WORDS.length] ?? 'word');
      const sentence = words.join(' ');
      sentenceList.push(`${sentence[0]?.toUpperCase()}${sentence.slice(1)}.`);
    }
    out.push(sentenceList.join(' '));
  }
  return out.join('\n\n');
}

const doc = (...sections: DocumentSection[]): ParsedDocument => ({ format: 'text', sections });
const fullText = (document: ParsedDocument): string => document.sections.map((section) => section.text).join('\n\n');
const isSpace = (text: string): boolean => /^\s*$/.test(text);

/** What every chunking must satisfy, checked with the real counter. */
function assertChunks(document: ParsedDocument, chunks: Chunk[], options: ChunkingOptions): void {
  const text = fullText(document);
  let coveredTo = 0;
  chunks.forEach((chunk, i) => {
    assert.equal(chunk.index, i);
    assert.equal(chunk.text, text.slice(chunk.charStart, chunk.charEnd), `chunk ${i} offsets`);
    assert.ok(chunk.text.length > 0 && chunk.text.trim() === chunk.text, `chunk ${i} is trimmed and not empty`);
    assert.equal(chunk.tokenCount, counter.count(chunk.text), `chunk ${i} tokenCount`);
    assert.ok(chunk.tokenCount <= options.maxTokens, `chunk ${i}: ${chunk.tokenCount} > ${options.maxTokens} tokens`);
    assert.ok(chunk.text.length <= options.maxTokens * MAX_CHARS_PER_TOKEN, `chunk ${i} characters`);
    assert.ok(isSpace(text.slice(coveredTo, chunk.charStart)), `text before chunk ${i} is not lost`);
    const previous = chunks[i - 1];
    if (previous && chunk.charStart < previous.charEnd) {
      assert.ok(chunk.charStart > previous.charStart, `chunk ${i} advances`);
      assert.ok(counter.count(text.slice(chunk.charStart, previous.charEnd)) <= options.overlapTokens, `overlap of chunk ${i}`);
      assert.ok(isSpace(text[chunk.charStart - 1] ?? ' '), `overlap of chunk ${i} starts at a whole word`);
    }
    coveredTo = Math.max(coveredTo, chunk.charEnd);
  });
  assert.ok(isSpace(text.slice(coveredTo)), 'text after the last chunk is not lost');
}

describe('chunkDocument', () => {
  test('an empty or blank document has no chunks', () => {
    const options = { maxTokens: 100, overlapTokens: 20 };
    assert.deepEqual(chunkDocument(doc(), options, counter), []);
    assert.deepEqual(chunkDocument(doc({ text: '' }, { text: '  \n\n \t' }, { text: '\n', page: 2 }), options, counter), []);
  });

  test('a short document is one chunk with its metadata', () => {
    const chunks = chunkDocument(doc({ text: '  Hello, world.\n', page: 3, title: 'Greeting' }), { maxTokens: 100, overlapTokens: 20 }, counter);
    assert.deepEqual(chunks, [
      { index: 0, text: 'Hello, world.', charStart: 2, charEnd: 15, tokenCount: 4, pageStart: 3, pageEnd: 3, pageBreaks: [{ char: 0, page: 3 }], title: 'Greeting' },
    ]);
  });

  test('long prose: sizes within maxTokens, exact offsets, overlap on every boundary', () => {
    const options = { maxTokens: 120, overlapTokens: 30 };
    const document = doc({ text: prose(12, 9) });
    const chunks = chunkDocument(document, options, counter);
    assertChunks(document, chunks, options);
    assert.ok(chunks.length > 10);
    const text = fullText(document);
    for (let i = 1; i < chunks.length; i++) {
      const previous = chunks[i - 1]!;
      const chunk = chunks[i]!;
      assert.ok(chunk.charStart < previous.charEnd, `chunk ${i} overlaps the previous one`);
      const overlap = counter.count(text.slice(chunk.charStart, previous.charEnd));
      assert.ok(overlap >= 1 && overlap <= 30, `overlap of chunk ${i}: ${overlap} tokens`);
    }
    const mean = chunks.reduce((sum, chunk) => sum + chunk.tokenCount, 0) / chunks.length;
    assert.ok(mean >= 60, `chunks are reasonably full (mean ${mean})`);
  });

  test('without overlap, chunks are disjoint', () => {
    const options = { maxTokens: 100, overlapTokens: 0 };
    const document = doc({ text: prose(6, 8) });
    const chunks = chunkDocument(document, options, counter);
    assertChunks(document, chunks, options);
    for (let i = 1; i < chunks.length; i++) assert.ok(chunks[i]!.charStart >= chunks[i - 1]!.charEnd);
  });

  test('chunks end at paragraph ends, then at sentence ends', () => {
    const options = { maxTokens: 200, overlapTokens: 0 };
    const paragraphs = doc({ text: prose(10, 3, 5) }); // paragraphs of ~50 tokens
    const text = fullText(paragraphs);
    const chunks = chunkDocument(paragraphs, options, counter);
    assertChunks(paragraphs, chunks, options);
    for (const chunk of chunks) {
      assert.ok(chunk.charEnd === text.length || text.startsWith('\n\n', chunk.charEnd), `chunk ${chunk.index} ends a paragraph`);
    }
    const oneParagraph = doc({ text: prose(1, 40, 9) });
    for (const chunk of chunkDocument(oneParagraph, options, counter)) assert.ok(chunk.text.endsWith('.'), `chunk ${chunk.index} ends a sentence`);
  });

  test('chunks span pages within a run and carry pageStart/pageEnd', () => {
    const options = { maxTokens: 150, overlapTokens: 30 };
    const document = doc(...[1, 2, 3, 4, 5, 6].map((page) => ({ text: prose(1, 4, page), page })));
    const chunks = chunkDocument(document, options, counter);
    assertChunks(document, chunks, options);
    const starts: number[] = [];
    let offset = 0;
    for (const section of document.sections) {
      starts.push(offset);
      offset += section.text.length + 2;
    }
    const pageAt = (position: number): number => starts.findLastIndex((start) => start <= position) + 1;
    for (const chunk of chunks) {
      assert.equal(chunk.pageStart, pageAt(chunk.charStart), `chunk ${chunk.index} pageStart`);
      assert.equal(chunk.pageEnd, pageAt(chunk.charEnd - 1), `chunk ${chunk.index} pageEnd`);
      assert.equal(chunk.title, undefined);
      // One break per page the chunk covers, at that page's first character in the document.
      const pages = Array.from({ length: chunk.pageEnd! - chunk.pageStart! + 1 }, (_, i) => chunk.pageStart! + i);
      assert.deepEqual(chunk.pageBreaks, pages.map((page) => ({ char: starts[page - 1]!, page })), `chunk ${chunk.index} pageBreaks`);
    }
    assert.ok(chunks.some((chunk) => chunk.pageStart !== chunk.pageEnd), 'some chunk spans two pages');
  });

  test('a new title starts a new chunk, without overlap from the previous section', () => {
    const options = { maxTokens: 150, overlapTokens: 40 };
    const document = doc(
      { text: prose(2, 3, 1), title: 'Intro' },
      { text: prose(1, 2, 2), title: 'Intro' },
      { text: prose(3, 4, 3), title: 'Methods' },
      { text: 'Short untitled tail.' },
    );
    const chunks = chunkDocument(document, options, counter);
    assertChunks(document, chunks, options);
    const text = fullText(document);
    const methodsStart = text.indexOf(document.sections[2]!.text);
    const tailStart = text.lastIndexOf('Short untitled tail.');
    for (const chunk of chunks) {
      const expected = chunk.charStart < methodsStart ? 'Intro' : chunk.charStart < tailStart ? 'Methods' : undefined;
      assert.equal(chunk.title, expected, `chunk ${chunk.index} title`);
      assert.ok(chunk.charStart >= methodsStart || chunk.charEnd <= methodsStart, 'no chunk crosses into Methods');
      assert.ok(chunk.charStart >= tailStart || chunk.charEnd <= tailStart, 'no chunk crosses into the tail');
    }
    assert.ok(chunks.some((chunk) => chunk.charStart === methodsStart), 'Methods starts its own chunk');
    assert.deepEqual(chunks.at(-1), {
      index: chunks.length - 1,
      text: 'Short untitled tail.',
      charStart: tailStart,
      charEnd: text.length,
      tokenCount: 4,
    });
  });

  test('a word longer than a chunk is cut, and its neighbours stay whole', () => {
    const options = { maxTokens: 100, overlapTokens: 20 };
    const giant = 'a,b;'.repeat(500); // ~2000 tokens without a space
    const document = doc({ text: `Before the blob. ${giant} After the blob.` });
    const chunks = chunkDocument(document, options, counter);
    assertChunks(document, chunks, options);
    assert.ok(chunks.length >= 20);
    assert.ok(chunks.some((chunk) => chunk.text.startsWith('Before the blob.')));
    assert.ok(chunks.at(-1)?.text.endsWith('After the blob.'));
  });

  test('a 20 MB line without spaces is chunked completely, within the limits', () => {
    const options = { maxTokens: 400, overlapTokens: 80 };
    const line = 'x9'.repeat(10 * 1024 * 1024); // one [UNK] per 100+ characters: bounded by characters
    const document = doc({ text: line });
    const chunks = chunkDocument(document, options, counter);
    assert.equal(chunks[0]?.charStart, 0);
    assert.equal(chunks.at(-1)?.charEnd, line.length);
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i]!;
      assert.ok(chunk.text.length <= options.maxTokens * MAX_CHARS_PER_TOKEN && chunk.tokenCount <= options.maxTokens);
      if (i > 0) assert.equal(chunk.charStart, chunks[i - 1]!.charEnd, 'pieces are contiguous');
    }
    assert.equal(chunks.length, Math.ceil(line.length / (options.maxTokens * MAX_CHARS_PER_TOKEN)));

    const dense = 'key:1,'.repeat(3 * 1024 * 1024); // ~4 tokens per 6 characters: bounded by tokens
    const denseChunks = chunkDocument(doc({ text: dense }), options, counter);
    assertChunks(doc({ text: dense }), denseChunks, options);
    assert.equal(denseChunks.at(-1)?.charEnd, dense.length);
  });

  test('checks every chunk with the counter: a tokenizer need not add up word by word', () => {
    // Counts a token per word and another per gap between words: the sum of the words' counts underestimates.
    const gapCounter = { count: (text: string) => Math.max(0, 2 * text.split(/\s+/).filter(Boolean).length - 1) };
    const options = { maxTokens: 21, overlapTokens: 6 };
    const document = doc({ text: prose(3, 5, 4) });
    const chunks = chunkDocument(document, options, gapCounter);
    const text = fullText(document);
    assert.ok(chunks.length > 5);
    for (const chunk of chunks) {
      assert.equal(chunk.text, text.slice(chunk.charStart, chunk.charEnd));
      assert.equal(chunk.tokenCount, gapCounter.count(chunk.text));
      assert.ok(chunk.tokenCount <= options.maxTokens, `${chunk.tokenCount} tokens`);
    }
    assert.equal(chunks.at(-1)?.charEnd, text.length);
  });

  test('rejects nonsensical options', () => {
    assert.throws(() => chunkDocument(doc({ text: 'x' }), { maxTokens: 0, overlapTokens: 0 }, counter), RangeError);
    assert.throws(() => chunkDocument(doc({ text: 'x' }), { maxTokens: 10, overlapTokens: 10 }, counter), RangeError);
    assert.throws(() => chunkDocument(doc({ text: 'x' }), { maxTokens: 10.5, overlapTokens: 1 }, counter), RangeError);
  });
});

describe('resolveChunking', () => {
  const staticStrategy = (max: number, overlap: number) =>
    ({ type: 'static', static: { max_chunk_size_tokens: max, chunk_overlap_tokens: overlap } }) as const;

  test('static values are honoured', () => {
    assert.deepEqual(resolveChunking(staticStrategy(800, 400), 512), { maxTokens: 800, overlapTokens: 400 });
    assert.deepEqual(resolveChunking(staticStrategy(100, 0), undefined), { maxTokens: 100, overlapTokens: 0 });
    assert.deepEqual(resolveChunking(staticStrategy(4096, 2048), undefined), { maxTokens: 4096, overlapTokens: 2048 });
  });

  test('static values outside OpenAI’s limits are a 400 naming the field', () => {
    const cases: Array<[number, number, string]> = [
      [99, 0, 'chunking_strategy.static.max_chunk_size_tokens'],
      [4097, 0, 'chunking_strategy.static.max_chunk_size_tokens'],
      [500.5, 0, 'chunking_strategy.static.max_chunk_size_tokens'],
      [800, 401, 'chunking_strategy.static.chunk_overlap_tokens'],
      [800, -1, 'chunking_strategy.static.chunk_overlap_tokens'],
      [800, 1.5, 'chunking_strategy.static.chunk_overlap_tokens'],
    ];
    for (const [max, overlap, param] of cases) {
      assert.throws(
        () => resolveChunking(staticStrategy(max, overlap), 512),
        (error: unknown) => {
          assert.ok(error instanceof InvalidChunkingStrategyError && error instanceof InvalidRequestError);
          assert.equal(error.status, 400);
          assert.equal(error.param, param);
          assert.match(error.message, new RegExp(`got ${overlap === 0 || param.endsWith('max_chunk_size_tokens') ? max : overlap}`));
          return true;
        },
        `${max}/${overlap}`,
      );
    }
  });

  test('auto fits the embedder and overlaps by a fifth', () => {
    assert.deepEqual(resolveChunking({ type: 'auto' }, 512), { maxTokens: AUTO_MAX_TOKENS, overlapTokens: 80 });
    assert.deepEqual(resolveChunking({ type: 'auto' }, 8191), { maxTokens: AUTO_MAX_TOKENS, overlapTokens: 80 });
    assert.deepEqual(resolveChunking({ type: 'auto' }, 256), { maxTokens: 256 - EMBEDDER_RESERVED_TOKENS, overlapTokens: 48 });
    assert.deepEqual(resolveChunking({ type: 'auto' }, 128), { maxTokens: 112, overlapTokens: 22 });
    assert.deepEqual(resolveChunking({ type: 'auto' }, 8), { maxTokens: 32, overlapTokens: 6 }, 'a floor for toy models');
  });

  test('auto without an embedder (lexical-only) uses the same sizes', () => {
    assert.deepEqual(resolveChunking({ type: 'auto' }, undefined), { maxTokens: 400, overlapTokens: 80 });
  });
});
