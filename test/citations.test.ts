import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { annotationsFor, citationsOf, pageAt } from '../src/rag/citations.ts';
import type { RetrievedChunk } from '../src/rag/retriever.ts';

/** A chunk of a PDF at document offsets 100–190, covering pages 4 (from 60), 5 (from 130) and 6 (from 170). */
const SPANNING: RetrievedChunk = {
  chunkId: 'c1', knowledgeBaseId: 'kb_1', fileId: 'file-1', filename: 'manual.pdf', score: 0.8, text: 'x'.repeat(90), chunkIndex: 2,
  charStart: 100, charEnd: 190, pageStart: 4, pageEnd: 6, attributes: {},
  pageBreaks: [{ char: 60, page: 4 }, { char: 130, page: 5 }, { char: 170, page: 6 }],
};

describe('pageAt', () => {
  it('finds the page of an offset in the chunk text from its page breaks', () => {
    assert.equal(pageAt(SPANNING, 0), 4);
    assert.equal(pageAt(SPANNING, 29), 4);
    assert.equal(pageAt(SPANNING, 30), 5, 'document offset 130 is where page 5 begins');
    assert.equal(pageAt(SPANNING, 85), 6);
  });

  it('falls back to the first page without breaks, and to null without pages', () => {
    const { pageBreaks: _dropped, ...legacy } = SPANNING;
    assert.equal(pageAt(legacy, 85), 4);
    const { pageStart: _start, pageEnd: _end, pageBreaks: _breaks, ...text } = SPANNING;
    assert.equal(pageAt(text, 10), null);
  });
});

describe('citationsOf', () => {
  it('gives page_start/page_end, with page = page_start unless a sentence of the source is quoted', () => {
    const sources = [{ index: 1, chunk: SPANNING }, { index: 2, chunk: { ...SPANNING, chunkId: 'c2' } }];
    const plain = citationsOf(sources);
    assert.deepEqual(plain.map((c) => [c.page, c.page_start, c.page_end]), [[4, 4, 6], [4, 4, 6]]);
    const quoted = citationsOf(sources, [{ source: 2, start: 75 }, { source: 2, start: 5 }]);
    assert.deepEqual(quoted.map((c) => [c.page, c.page_start, c.page_end]), [[4, 4, 6], [6, 4, 6]], "the source's first quote decides");
  });

  it('gives null pages for formats without pages', () => {
    const { pageStart: _start, pageEnd: _end, pageBreaks: _breaks, ...text } = SPANNING;
    const [citation] = citationsOf([{ index: 1, chunk: text }], [{ source: 1, start: 3 }]);
    assert.deepEqual([citation!.page, citation!.page_start, citation!.page_end], [null, null, null]);
    assert.deepEqual(annotationsFor('Yes [1].', [citation!], 'http://cairn.test/v1/files'), [
      { type: 'url_citation', url_citation: { url: 'http://cairn.test/v1/files/file-1/content', title: 'manual.pdf', start_index: 4, end_index: 7 } },
    ]);
  });
});
