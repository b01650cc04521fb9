/** The optional rerank stage, configured in the model config, reorders what search and chat retrieve. */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { WordPieceTokenCounter } from '../src/ingest/token-counter.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { createTinyCrossEncoder } from './helpers/tiny-cross-encoder.ts';

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

describe('retrieval with a local cross-encoder reranker', () => {
  let cairn: TestCairn;
  let client: OpenAI;

  before(async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cairn-rerank-'));
    const model = await createTinyCrossEncoder(dir);
    cairn = await startCairn({
      env: { CAIRN_MODELS_DIR: model.modelsDir },
      modelConfig: { rerank: { provider: 'local', source: model.modelId } },
    });
    client = cairn.client();
  });
  after(() => cairn.stop());

  it('reorders search results by the reranker and reports its scores', async () => {
    const kb = await client.vectorStores.create({ name: 'rerank', ...({ embedding_model: 'none' } as object) });
    await client.vectorStores.fileBatches.uploadAndPoll(kb.id, {
      files: [
        // BM25 prefers the short document (length normalisation); the tiny cross-encoder counts
        // shared tokens, so the document repeating the query's words wins after reranking.
        await toFile(Buffer.from('otters swim'), 'short.txt'),
        await toFile(Buffer.from('otters swim and otters swim again while otters swim in rivers where many creatures live and play all day long'), 'long.txt'),
      ],
    });
    const results = await client.vectorStores.search(kb.id, { query: 'otters swim' });
    assert.deepEqual(results.data.map((hit) => hit.filename), ['long.txt', 'short.txt']);
    // The tiny model's logit is the number of matching (query token, text token) pairs: for the
    // short text, which is the query itself with no repeated token, one pair per query token.
    const queryTokens = (await WordPieceTokenCounter.load()).count('otters swim');
    assert.ok(Math.abs(results.data[1]!.score - sigmoid(queryTokens)) < 1e-4, `${results.data[1]!.score} vs sigmoid(${queryTokens})`);
    assert.ok(results.data[0]!.score > results.data[1]!.score);
  });
});
