import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mean, mrrAtK, ndcgAtK, percentile, recallAtK } from '../src/eval/ir-metrics.ts';

const grades = (entries: Record<string, number>): Map<string, number> => new Map(Object.entries(entries));
/** Floating-point sums in another order differ in the last bits; anything beyond 1e-12 is a different formula. */
/** The rank-2 discount, 1/log2(3) (rank 1: 1/log2(2) = 1; rank 3: 1/log2(4) = 0.5). */
const RANK2 = 0.6309297535714575;
const close = (actual: number, expected: number): void => assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} ≠ ${expected}`);

describe('ndcgAtK (trec_eval ndcg_cut: linear gains, log2(rank + 1) discount)', () => {
  test('matches pytrec_eval\'s own test cases: one relevant document at rank 1, 2 and 3', () => {
    const qrels = grades({ d1: 0, d2: 1, d3: 0 });
    assert.equal(ndcgAtK(['d2', 'd3', 'd1'], qrels, 10), 1);
    // pytrec_eval expects 0.6309297535714575 = 1/log2(3) at rank 2 (trec_eval 8 would give 1).
    close(ndcgAtK(['d1', 'd2', 'd3'], qrels, 10), RANK2);
    // Rank 3: 1/log2(4) = 0.5; cut at 2 it is outside the top k: 0.
    close(ndcgAtK(['d3', 'd1', 'd2'], qrels, 3), 0.5);
    assert.equal(ndcgAtK(['d3', 'd1', 'd2'], qrels, 2), 0);
  });

  test('uses the grade as the gain, not 2^grade − 1', () => {
    // Grade 1 at rank 1, grade 3 at rank 2. Linear: DCG = 1 + 3/log2(3), IDCG = 3 + 1/log2(3).
    close(ndcgAtK(['x', 'y'], grades({ x: 1, y: 3 }), 10), (1 + 3 * RANK2) / (3 + 1 * RANK2));
    // (Exponential gains would give (1 + 7/log2(3)) / (7 + 1/log2(3)) = 0.7098…, not 0.7967….)
    assert.ok(Math.abs(ndcgAtK(['x', 'y'], grades({ x: 1, y: 3 }), 10) - 0.79671) < 1e-5);
  });

  test('ideal DCG comes from the qrels, sorted and cut at k, whether or not the documents were retrieved', () => {
    // Retrieved: n (not judged), b (grade 1). Qrels: a=2, b=1, c=1, z=0.
    // DCG@2 = 0/1 + 1/log2(3); IDCG@2 = 2/1 + 1/log2(3) (the third relevant document is beyond k)
    const qrels = grades({ a: 2, b: 1, c: 1, z: 0 });
    close(ndcgAtK(['n', 'b', 'a'], qrels, 2), (0 + 1 * RANK2) / (2 + 1 * RANK2));
    // k = 3: DCG = 1/log2(3) + 2/log2(4); IDCG = 2 + 1/log2(3) + 1/log2(4)
    close(ndcgAtK(['n', 'b', 'a'], qrels, 3), (1 * RANK2 + 2 * 0.5) / (2 + 1 * RANK2 + 1 * 0.5));
  });

  test('ignores non-positive grades and gives 0 when the query has nothing relevant', () => {
    assert.equal(ndcgAtK(['a', 'b'], grades({ a: 0, b: -1 }), 10), 0);
    assert.equal(ndcgAtK([], grades({ a: 1 }), 10), 0);
    // A judged-irrelevant document (grade 0) at rank 1 only pushes the relevant one down: 1/log2(3).
    close(ndcgAtK(['a', 'b'], grades({ a: 0, b: 1 }), 10), RANK2);
  });

  test('rejects a ranking with duplicates and a bad k', () => {
    assert.throws(() => ndcgAtK(['a', 'a'], grades({ a: 1 }), 10), /more than once/);
    assert.throws(() => ndcgAtK(['a'], grades({ a: 1 }), 0), RangeError);
    assert.throws(() => ndcgAtK(['a'], grades({ a: 1 }), 2.5), RangeError);
  });
});

describe('recallAtK', () => {
  test('counts relevant documents (grade > 0) in the top k over all relevant documents', () => {
    const qrels = grades({ a: 2, b: 1, c: 1, z: 0 });
    // Top 2 = [a, z]: 1 of the 3 relevant (z is judged, grade 0, not relevant).
    close(recallAtK(['a', 'z', 'b', 'n'], qrels, 2), 1 / 3);
    // Top 3 adds b: 2 of 3.
    close(recallAtK(['a', 'z', 'b', 'n'], qrels, 3), 2 / 3);
    assert.equal(recallAtK(['a', 'b', 'c'], qrels, 100), 1);
    assert.equal(recallAtK(['n'], grades({ z: 0 }), 10), 0);
  });
});

describe('mrrAtK', () => {
  test('is 1 / the rank of the first relevant document within the top k', () => {
    const qrels = grades({ c: 1, d: 2, z: 0 });
    close(mrrAtK(['z', 'x', 'c', 'd'], qrels, 10), 1 / 3);
    assert.equal(mrrAtK(['d', 'c'], qrels, 10), 1);
    // The first relevant document is at rank 3, outside the top 2.
    assert.equal(mrrAtK(['z', 'x', 'c'], qrels, 2), 0);
    assert.equal(mrrAtK([], qrels, 10), 0);
  });
});

describe('percentile (linear interpolation, numpy\'s default)', () => {
  test('interpolates between the closest ranks of the sorted values', () => {
    // Sorted [1, 2, 3, 4]: h = 3·0.5 = 1.5 → 2 + 0.5·(3 − 2) = 2.5
    assert.equal(percentile([4, 1, 3, 2], 50), 2.5);
    // 1..20: h = 19·0.95 = 18.05 → 19 + 0.05·(20 − 19) = 19.05
    close(percentile(Array.from({ length: 20 }, (_, i) => 20 - i), 95), 19.05);
    // [10, 20, 30, 40, 50]: h = 4·0.95 = 3.8 → 40 + 0.8·10 = 48
    close(percentile([50, 10, 40, 20, 30], 95), 48);
    assert.equal(percentile([7, 3, 9], 0), 3);
    assert.equal(percentile([7, 3, 9], 100), 9);
    assert.equal(percentile([7, 3, 9], 50), 7);
    assert.equal(percentile([42], 95), 42);
  });

  test('does not reorder the caller\'s array, and rejects empty input and p outside [0, 100]', () => {
    const values = [3, 1, 2];
    percentile(values, 50);
    assert.deepEqual(values, [3, 1, 2]);
    assert.throws(() => percentile([], 50), RangeError);
    assert.throws(() => percentile([1], 101), RangeError);
    assert.throws(() => percentile([1], -1), RangeError);
  });
});

describe('mean', () => {
  test('averages, and refuses an empty list', () => {
    assert.equal(mean([1, 2, 6]), 3);
    assert.throws(() => mean([]), RangeError);
  });
});
