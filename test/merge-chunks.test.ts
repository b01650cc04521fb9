import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeChunks } from '../src/rag/merge-chunks.ts';
import type { RetrievedChunk } from '../src/rag/retriever.ts';

const DOC = 'Alpha beta gamma. Delta epsilon zeta. Eta theta iota.';

function chunk(id: string, fileId: string, start: number, end: number, score: number, kb = 'kb_1'): RetrievedChunk {
  return { chunkId: id, knowledgeBaseId: kb, fileId, filename: `${fileId}.txt`, score, text: DOC.slice(start, end), chunkIndex: 0, charStart: start, charEnd: end, attributes: {} };
}

describe('mergeChunks', () => {
  it('stitches overlapping chunks of one file by their offsets, keeping the better rank and score', () => {
    const merged = mergeChunks([chunk('b', 'f', 18, 54, 0.9), chunk('x', 'g', 0, 17, 0.8), chunk('a', 'f', 0, 37, 0.5)]);
    assert.deepEqual(merged.map((c) => c.chunkId), ['b', 'x']);
    assert.equal(merged[0]!.text, DOC);
    assert.equal(merged[0]!.charStart, 0);
    assert.equal(merged[0]!.charEnd, 54);
    assert.equal(merged[0]!.score, 0.9);
  });

  it('drops a duplicate text from another file or knowledge base, and keeps distinct ones in order', () => {
    const copy = { ...chunk('c', 'copy', 0, 17, 0.4, 'kb_2'), text: '  ALPHA beta\ngamma. ' };
    const merged = mergeChunks([chunk('a', 'f', 0, 17, 0.9), chunk('d', 'f', 38, 54, 0.6), copy]);
    assert.deepEqual(merged.map((c) => c.chunkId), ['a', 'd']);
  });

  it('keeps both chunks\' page breaks when stitching, so a sentence in either keeps its page', () => {
    const a = { ...chunk('a', 'f', 0, 37, 0.5), pageStart: 1, pageEnd: 2, pageBreaks: [{ char: 0, page: 1 }, { char: 18, page: 2 }] };
    const b = { ...chunk('b', 'f', 18, 54, 0.9), pageStart: 2, pageEnd: 3, pageBreaks: [{ char: 18, page: 2 }, { char: 38, page: 3 }] };
    const [merged] = mergeChunks([b, a]);
    assert.deepEqual([merged!.pageStart, merged!.pageEnd], [1, 3]);
    assert.deepEqual(merged!.pageBreaks, [{ char: 0, page: 1 }, { char: 18, page: 2 }, { char: 38, page: 3 }]);
    // A chunk stored before page breaks existed leaves the passage without them (its page is then page_start).
    const legacy = { ...chunk('c', 'f', 18, 54, 0.9), pageStart: 2, pageEnd: 3 };
    assert.equal(mergeChunks([legacy, a])[0]!.pageBreaks, undefined);
  });
});
