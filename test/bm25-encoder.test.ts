import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Bm25Encoder, DEFAULT_AVG_DOC_LENGTH, DEFAULT_B, DEFAULT_K1, fnv1a32, type SparseVector } from '../src/vectors/bm25-encoder.ts';
import { stemmer } from 'stemmer';
import { ENGLISH_STOP_WORDS } from '../src/vectors/stop-words.ts';

const encoder = new Bm25Encoder();
const index = (word: string): number => {
  const { indices } = encoder.encodeQuery(word);
  assert.equal(indices.length, 1, `"${word}" is one term`);
  return indices[0]!;
};
/** The value of `word`'s term in a vector (undefined when absent). */
const valueOf = (vector: SparseVector, word: string): number | undefined => {
  const position = vector.indices.indexOf(index(word));
  return position < 0 ? undefined : vector.values[position];
};
const filler = (count: number): string => Array.from({ length: count }, (_, i) => `filler${i}`).join(' ');

function assertWellFormed(vector: SparseVector): void {
  assert.equal(vector.indices.length, vector.values.length);
  for (let i = 0; i < vector.indices.length; i++) {
    const current = vector.indices[i]!;
    assert.ok(Number.isInteger(current) && current >= 0 && current <= 0xffffffff, `index ${current} is a u32`);
    if (i > 0) assert.ok(current > vector.indices[i - 1]!, 'indices are strictly ascending (sorted and unique)');
    assert.ok(Number.isFinite(vector.values[i]) && vector.values[i]! > 0);
  }
}

describe('fnv1a32', () => {
  test('is the standard 32-bit FNV-1a over UTF-8', () => {
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c);
    assert.equal(fnv1a32('foobar'), 0xbf9cf968);
    // "é" is the two UTF-8 bytes C3 A9, not the UTF-16 unit E9.
    let expected = 0x811c9dc5;
    for (const byte of [0xc3, 0xa9]) expected = Math.imul(expected ^ byte, 0x01000193) >>> 0;
    assert.equal(fnv1a32('é'), expected);
  });
});

describe('Bm25Encoder', () => {
  test('uses the documented defaults', () => {
    assert.equal(encoder.k1, DEFAULT_K1);
    assert.equal(encoder.b, DEFAULT_B);
    assert.equal(encoder.avgDocLength, DEFAULT_AVG_DOC_LENGTH);
    assert.equal(DEFAULT_K1, 1.2);
    assert.equal(DEFAULT_B, 0.75);
  });

  test('drops stop words, lowercases and splits on non-alphanumerics', () => {
    assert.deepEqual(encoder.encodeQuery('The AND of, to; a: is the'), { indices: [], values: [] });
    assert.deepEqual(encoder.encodeDocument(''), { indices: [], values: [] });
    assert.ok(ENGLISH_STOP_WORDS.has('the') && !ENGLISH_STOP_WORDS.has('cell'));
    assert.equal(index('Vaccine'), index('vaccine'));
    assert.equal(index('VACCINE'), index('vaccine'));
    const vector = encoder.encodeQuery('the vaccine-trial (of 2021) in the U.K.');
    assert.deepEqual(vector.indices, [...new Set(['vaccine', 'trial', '2021', 'u', 'k'].map(index))].sort((a, b) => a - b));
  });

  test('stems English words: running and runs share an index', () => {
    assert.equal(index('running'), index('runs'));
    assert.equal(index('running'), index('run'));
    assert.equal(index('studies'), index('study'));
    assert.notEqual(index('running'), index('rung'));
    assert.equal(index('cell’s'.replace('’', "'")), index('cell'), 'a possessive adds nothing');
  });

  test('keeps numbers and other scripts, and folds ligatures', () => {
    assert.notEqual(index('42'), index('43'));
    assert.equal(encoder.encodeQuery('covid19').indices.length, 1);
    assert.equal(index('ﬁnance'), index('finance'), 'NFKC folds the ﬁ ligature PDFs produce');
    assert.equal(index('ＦＵＬＬ'), index('full'));
    assert.equal(encoder.encodeQuery('日本語 русский ελληνικά').indices.length, 4, '日本 本語, русский, ελληνικά');
    assert.equal(index('café'), fnv1a32('café'), 'non-English words are indexed as written');
  });

  test('ASCII and Unicode texts are analysed alike', () => {
    // A non-ASCII character sends the whole text through the Unicode path (NFKC + regex).
    const ascii = encoder.encodeQuery('Running 3 trials of COVID19 vaccines, e.g. in 2021.');
    const mixed = encoder.encodeQuery('Running 3 trials of COVID19 vaccines, e.g. in 2021. é');
    assert.deepEqual(mixed.indices, [...ascii.indices, index('é')].sort((a, b) => a - b));
  });

  test('CJK runs become overlapping character bigrams, so a word inside a longer run is found', () => {
    const bigrams = (...terms: string[]): number[] => [...new Set(terms.map(fnv1a32))].sort((a, b) => a - b);
    assert.deepEqual(encoder.encodeQuery('コンピュータ').indices, bigrams('コン', 'ンピ', 'ピュ', 'ュー', 'ータ'));
    const document = encoder.encodeDocument('量子コンピュータの研究');
    for (const term of encoder.encodeQuery('コンピュータ').indices) assert.ok(document.indices.includes(term), 'every bigram of the word is in the run');
    assert.deepEqual(encoder.encodeQuery('计算机').indices, bigrams('计算', '算机'), 'Chinese');
    assert.deepEqual(encoder.encodeQuery('검색엔진').indices, bigrams('검색', '색엔', '엔진'), 'Korean');
    assert.deepEqual(encoder.encodeQuery('日').indices, bigrams('日'), 'a one-character run is its unigram');
    assert.deepEqual(encoder.encodeQuery('ｺﾝﾋﾟｭｰﾀ').indices, encoder.encodeQuery('コンピュータ').indices, 'NFKC folds half-width katakana first');
    assert.deepEqual(encoder.encodeQuery('𠀀𠀁𠀂').indices, bigrams('𠀀𠀁', '𠀁𠀂'), 'astral Han characters are whole characters');
  });

  test('CJK next to other scripts: the CJK run is bigrammed, the rest analysed as before', () => {
    const bigrams = (...terms: string[]): number[] => [...new Set(terms.map(fnv1a32))].sort((a, b) => a - b);
    assert.deepEqual(encoder.encodeQuery('running用アプリ').indices, bigrams(stemmer('running'), '用ア', 'アプ', 'プリ'));
    assert.deepEqual(encoder.encodeQuery('東京2020年').indices, bigrams('東京', '2020', '年'));
    // The document length counts bigrams: four here (日本 本語 語で です), weighed like four distinct words.
    assert.deepEqual(encoder.encodeDocument('日本語です').values, encoder.encodeDocument('alpha beta gamma delta').values);
    assert.notDeepEqual(encoder.encodeDocument('日本語です').values, encoder.encodeDocument('alpha beta gamma delta epsilon').values.slice(0, 4));
  });

  test('non-CJK text is tokenised exactly as before (words, NFKC, stop words, Porter stems of ASCII words)', () => {
    const before = (text: string): number[] => {
      const words = text.normalize('NFKC').toLowerCase().match(/[\p{L}\p{N}][\p{L}\p{M}\p{N}]*/gu) ?? [];
      const terms = words.filter((word) => !ENGLISH_STOP_WORDS.has(word)).map((word) => (/^[a-z]+$/.test(word) ? stemmer(word) : word));
      return [...new Set(terms.map(fnv1a32))].sort((a, b) => a - b);
    };
    for (const text of [
      'The ﬁrst trials of COVID-19 vaccines, e.g. in the U.K. (2021).',
      'Ein Übergrößenträger läuft schnell; café crème à 3,50 €.',
      'русский язык и ελληνικά γράμματα, हिन्दी भाषा, العربية',
      'ＦＵＬＬ－ＷＩＤＴＨ ｌｅｔｔｅｒｓ ａｎｄ ① ② digits',
    ]) {
      assert.deepEqual(encoder.encodeQuery(text).indices, before(text), text);
    }
  });

  test('indices are sorted, unique u32 values, even for repeated and colliding terms', () => {
    const text = 'Runs running run RUN ran; cells cell cell’s cellular. ' + filler(300) + ' 日本語 日本語 ﬁnance finance';
    assertWellFormed(encoder.encodeDocument(text));
    assertWellFormed(encoder.encodeQuery(text));
    const run = encoder.encodeDocument('runs running run');
    assert.deepEqual(run.indices, [index('run')], 'one entry per stem');
  });

  test('document values are BM25 term-frequency weights', () => {
    const custom = new Bm25Encoder({ k1: 1.5, b: 0.5, avgDocLength: 10 });
    const vector = custom.encodeDocument('alpha alpha beta gamma delta'); // length 5, tf(alpha) = 2
    const norm = 1.5 * (1 - 0.5 + (0.5 * 5) / 10);
    const position = vector.indices.indexOf(index('alpha'));
    assert.ok(Math.abs(vector.values[position]! - (2 * 2.5) / (2 + norm)) < 1e-12);
    const beta = vector.indices.indexOf(index('beta'));
    assert.ok(Math.abs(vector.values[beta]! - 2.5 / (1 + norm)) < 1e-12);
  });

  test('term frequency saturates: grows with tf, sublinearly, below k1 + 1', () => {
    const weights = [1, 2, 4, 8, 16, 64].map((tf) => valueOf(encoder.encodeDocument(`${'vaccine '.repeat(tf)} ${filler(200 - tf)}`), 'vaccine')!);
    for (let i = 1; i < weights.length; i++) {
      assert.ok(weights[i]! > weights[i - 1]!, 'more occurrences weigh more');
      assert.ok(weights[i]! < 2 * weights[i - 1]!, 'but less than proportionally');
      assert.ok(weights[i]! < DEFAULT_K1 + 1, 'and never reach k1 + 1');
    }
    assert.ok(weights.at(-1)! > 0.9 * (DEFAULT_K1 + 1), 'approaching k1 + 1');
  });

  test('length normalisation: the same tf weighs less in a longer document', () => {
    const short = valueOf(encoder.encodeDocument(`vaccine vaccine ${filler(20)}`), 'vaccine')!;
    const average = valueOf(encoder.encodeDocument(`vaccine vaccine ${filler(DEFAULT_AVG_DOC_LENGTH - 2)}`), 'vaccine')!;
    const long = valueOf(encoder.encodeDocument(`vaccine vaccine ${filler(2000)}`), 'vaccine')!;
    assert.ok(short > average && average > long, `${short} > ${average} > ${long}`);
    // At the average length BM25 reduces to tf·(k1+1)/(tf+k1).
    assert.ok(Math.abs(average - (2 * 2.2) / (2 + 1.2)) < 1e-12);
    // Stop words do not count towards the length.
    assert.equal(valueOf(encoder.encodeDocument(`vaccine ${'the of and '.repeat(100)}`), 'vaccine'), valueOf(encoder.encodeDocument('vaccine'), 'vaccine'));
    // b = 0 ignores length altogether.
    const flat = new Bm25Encoder({ b: 0 });
    assert.equal(valueOf(flat.encodeDocument(`vaccine ${filler(5)}`), 'vaccine'), valueOf(flat.encodeDocument(`vaccine ${filler(5000)}`), 'vaccine'));
  });

  test('query vectors have 1 per distinct term, matching document indices', () => {
    const query = encoder.encodeQuery('Running reduces the risk? Running daily!');
    assert.deepEqual(query.values, [1, 1, 1, 1]);
    const document = encoder.encodeDocument('Daily runs reduced cardiovascular risk in the cohort.');
    for (const term of query.indices) assert.ok(document.indices.includes(term), 'every query term is found in the matching document');
  });

  test('is deterministic across encoder instances (no shared vocabulary to keep in sync)', () => {
    const text = 'Hybrid retrieval fuses BM25 and dense vectors with reciprocal rank fusion.';
    assert.deepEqual(new Bm25Encoder().encodeDocument(text), encoder.encodeDocument(text));
    assert.deepEqual(new Bm25Encoder().encodeQuery(text), encoder.encodeQuery(text));
  });

  test('rejects invalid options', () => {
    assert.throws(() => new Bm25Encoder({ k1: -1 }), RangeError);
    assert.throws(() => new Bm25Encoder({ b: 1.5 }), RangeError);
    assert.throws(() => new Bm25Encoder({ avgDocLength: 0 }), RangeError);
    assert.throws(() => new Bm25Encoder({ avgDocLength: Number.NaN }), RangeError);
  });
});
