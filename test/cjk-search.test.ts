/**
 * Lexical search in Chinese and Japanese through the public API: CJK text has no spaces, so a
 * word written inside a longer run (コンピュータ in 量子コンピュータは…) is found only because the
 * BM25 encoder indexes CJK runs as overlapping character bigrams. Real Postgres and Qdrant, a
 * lexical-only knowledge base (embedding_model "none"), the fixtures in test/fixtures/cjk.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type OpenAI from 'openai';
import { toFile } from 'openai';
import { startCairn, type TestCairn } from './helpers/harness.ts';

const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/cjk');
const FILES = ['quantum-ja.txt', 'tea-ja.txt', 'library-zh.txt', 'weather-zh.txt'];

describe('CJK lexical search', () => {
  let cairn: TestCairn;
  let client: OpenAI;
  let kb: OpenAI.VectorStore;

  before(async () => {
    cairn = await startCairn();
    client = cairn.client();
    kb = await client.vectorStores.create({ name: 'cjk', ...({ embedding_model: 'none' } as object) });
    const files = await Promise.all(FILES.map(async (name) => toFile(await readFile(path.join(FIXTURES, name)), name)));
    const batch = await client.vectorStores.fileBatches.uploadAndPoll(kb.id, { files });
    assert.equal(batch.file_counts.completed, FILES.length);
  });

  after(async () => {
    await cairn.stop();
  });

  const filenames = async (query: string): Promise<string[]> => (await client.vectorStores.search(kb.id, { query })).data.map((hit) => hit.filename);

  it('finds a Japanese katakana word inside a longer run (コンピュータ in 量子コンピュータ)', async () => {
    assert.deepEqual(await filenames('コンピュータ'), ['quantum-ja.txt']);
  });

  it('finds Japanese kanji words inside sentences (抹茶, 静岡)', async () => {
    assert.deepEqual(await filenames('抹茶'), ['tea-ja.txt']);
    assert.deepEqual(await filenames('静岡'), ['tea-ja.txt']);
  });

  it('finds Chinese words inside sentences (图书馆, 台风)', async () => {
    assert.deepEqual(await filenames('图书馆'), ['library-zh.txt']);
    assert.deepEqual(await filenames('台风'), ['weather-zh.txt']);
  });

  it('ranks the document with more of a question\'s bigrams first', async () => {
    const hits = await filenames('北京的图书馆有多少藏书？');
    assert.equal(hits[0], 'library-zh.txt');
  });

  it('answers the knowledge-base search endpoint the same way', async () => {
    const response = await fetch(`${cairn.baseURL}/knowledge_bases/${kb.id}/search`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cairn.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '量子', max_num_results: 5 }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { data: Array<{ filename: string; content: Array<{ text: string }> }> };
    assert.deepEqual(body.data.map((hit) => hit.filename), ['quantum-ja.txt']);
    assert.match(body.data[0]!.content[0]!.text, /量子コンピュータ/);
  });
});
