/** Which tiktoken encoding a client used, by the model name it sent, and decoding its ids back to text. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodingForModel, TokenIdDecoder } from '../src/embeddings/token-ids.ts';

describe('token-array input', () => {
  it('picks cl100k_base for OpenAI embedding names and unknown names, o200k_base for the 4o/o-series families', () => {
    for (const model of ['text-embedding-ada-002', 'text-embedding-3-small', 'text-embedding-3-large', 'bge-small-en-v1.5', 'tiny-minilm']) {
      assert.equal(encodingForModel(model), 'cl100k_base', model);
    }
    for (const model of ['gpt-4o', 'gpt-4o-mini', 'gpt-4o-2099-01-01', 'o3-mini', 'gpt-4.1', 'gpt-5-nano']) {
      assert.equal(encodingForModel(model), 'o200k_base', model);
    }
  });

  it('decodes with the chosen encoding', async () => {
    const decoder = new TokenIdDecoder();
    assert.deepEqual(await decoder.decode('text-embedding-3-small', [[15339, 1917]], false), ['hello world']);
    // The same ids mean other text in o200k_base: the encoding matters.
    const [o200k] = await decoder.decode('gpt-4o', [[15339, 1917]], false);
    assert.notEqual(o200k, 'hello world');
    await assert.rejects(decoder.decode('gpt-4o', [[199_999_999]], true), /input\[0\] is 199999999, which is not a token id of o200k_base/);
  });
});
