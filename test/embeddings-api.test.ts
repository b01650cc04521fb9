/** POST /v1/embeddings through the openai SDK: a local transformers.js model (tiny, generated) and a remote upstream. */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';
import { createTinyEmbeddingModel } from './helpers/tiny-model.ts';

function cosine(a: number[], b: number[]): number {
  return a.reduce((sum, value, i) => sum + value * b[i]!, 0);
}

describe('embeddings API', () => {
  let cairn: TestCairn;
  let client: OpenAI;
  let upstream: StubUpstream;
  let dimensions: number;

  before(async () => {
    const tiny = await createTinyEmbeddingModel(await mkdtemp(path.join(tmpdir(), 'cairn-tiny-')), { name: 'tiny-minilm' });
    dimensions = tiny.dimensions;
    upstream = await StubUpstream.start({ name: 'tei' });
    cairn = await startCairn({
      pglite: true,
      env: { CAIRN_MODELS_DIR: tiny.modelsDir, CAIRN_EMBEDDING_MODEL: tiny.modelId },
      modelConfig: {
        embeddings: [
          { id: 'remote-embedder', provider: 'openai', base_url: upstream.url, model: 'bge-large', max_batch_size: 2 },
          // The same tiny weights, marked as trained for truncation: once with sizes, once for any size.
          { id: 'tiny-matryoshka', provider: 'local', source: tiny.modelId, dimensions: [8, 16] },
          { id: 'tiny-any-size', provider: 'local', source: tiny.modelId, matryoshka: true },
        ],
      },
    });
    client = cairn.client();
  });

  after(async () => {
    await cairn.stop();
    await upstream.close();
  });

  it('embeds with the local default model, as floats', async () => {
    const result = await client.embeddings.create({
      model: 'tiny-minilm',
      input: ['the cat sat on the mat', 'a cat sat on a mat', 'quarterly revenue grew'],
      encoding_format: 'float',
    });
    assert.equal(result.object, 'list');
    assert.equal(result.model, 'tiny-minilm');
    assert.deepEqual(result.data.map((item) => item.index), [0, 1, 2]);
    const [cat, cat2, revenue] = result.data.map((item) => item.embedding);
    assert.equal(cat!.length, dimensions);
    assert.ok(Math.abs(cosine(cat!, cat!) - 1) < 1e-4, 'normalised');
    assert.ok(cosine(cat!, cat2!) > cosine(cat!, revenue!), 'similar texts are closer');
    // [CLS] the cat sat on the mat [SEP] = 8; [CLS] a cat sat on a mat [SEP] = 8; [CLS] quarterly revenue grew [SEP] = 5
    assert.equal(result.usage.prompt_tokens, 21);
  });

  it('returns the same vectors as base64 (the SDK default) as it does as floats', async () => {
    const asFloats = await client.embeddings.create({ model: 'tiny-minilm', input: 'hello world', encoding_format: 'float' });
    // The SDK asks for base64 by default and decodes it back to numbers.
    const viaBase64 = await client.embeddings.create({ model: 'tiny-minilm', input: 'hello world' });
    const expected = asFloats.data[0]!.embedding;
    viaBase64.data[0]!.embedding.forEach((value, i) => assert.ok(Math.abs(value - expected[i]!) < 1e-6));

    const raw = await fetch(`${cairn.baseURL}/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cairn.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-minilm', input: 'hello world', encoding_format: 'base64' }),
    });
    const body = (await raw.json()) as { data: Array<{ embedding: string }> };
    assert.equal(typeof body.data[0]!.embedding, 'string');
    assert.equal(Buffer.from(body.data[0]!.embedding, 'base64').byteLength, dimensions * 4);
  });

  it('embeds through a remote OpenAI-compatible upstream in batches', async () => {
    const result = await client.embeddings.create({ model: 'remote-embedder', input: ['a', 'b', 'c'], encoding_format: 'float' });
    assert.equal(result.data.length, 3);
    assert.equal(upstream.requests.length, 2, 'batches of two');
    assert.equal(upstream.requests[0]!.body.model, 'bge-large');
  });

  it('rejects bad input and unknown models with the SDK error classes', async () => {
    await assert.rejects(client.embeddings.create({ model: 'no-such-embedder', input: 'x' }), OpenAI.NotFoundError);
    await assert.rejects(
      client.embeddings.create({ model: 'tiny-minilm', input: '' }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'input',
    );
    await assert.rejects(
      client.embeddings.create({ model: 'tiny-minilm', input: 'x', dimensions: 3 }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'dimensions',
    );
  });

  it("embeds token-array input (LangChain's default) as the text those cl100k_base ids spell", async () => {
    // cl100k_base: 15339 = "hello", 1917 = " world".
    const text = await client.embeddings.create({ model: 'tiny-minilm', input: 'hello world', encoding_format: 'float' });
    const nested = await client.embeddings.create({ model: 'tiny-minilm', input: [[15339, 1917], [15339]], encoding_format: 'float' });
    const flat = await client.embeddings.create({ model: 'tiny-minilm', input: [15339, 1917], encoding_format: 'float' });
    const hello = await client.embeddings.create({ model: 'tiny-minilm', input: 'hello', encoding_format: 'float' });
    assert.equal(nested.data.length, 2);
    assert.deepEqual(nested.data[0]!.embedding, text.data[0]!.embedding);
    assert.deepEqual(nested.data[1]!.embedding, hello.data[0]!.embedding);
    assert.equal(flat.data.length, 1);
    assert.deepEqual(flat.data[0]!.embedding, text.data[0]!.embedding);
    assert.equal(nested.usage.prompt_tokens, text.usage.prompt_tokens + hello.usage.prompt_tokens, "usage counts the model's own tokens");
  });

  it('refuses token ids outside the vocabulary with a 400 naming the input', async () => {
    await assert.rejects(
      client.embeddings.create({ model: 'tiny-minilm', input: [[15339], [15339, 999_999]] }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'input[1]' && /input\[1\]\[1\] is 999999/.test(error.message),
    );
    await assert.rejects(
      client.embeddings.create({ model: 'tiny-minilm', input: [15339, 1917, 300_000] }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'input[2]' && /cl100k_base/.test(error.message),
    );
    await assert.rejects(
      client.embeddings.create({ model: 'tiny-minilm', input: [[]] }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'input[0]' && /must not be empty/.test(error.message),
    );
  });

  it('truncates and re-normalises for `dimensions` on models configured for it, and only there', async () => {
    const full = await client.embeddings.create({ model: 'tiny-matryoshka', input: 'the cat sat', encoding_format: 'float' });
    assert.equal(full.data[0]!.embedding.length, dimensions);
    for (const model of ['tiny-matryoshka', 'tiny-any-size']) {
      const short = await client.embeddings.create({ model, input: 'the cat sat', dimensions: 8, encoding_format: 'float' });
      const vector = short.data[0]!.embedding;
      assert.equal(vector.length, 8);
      assert.ok(Math.abs(cosine(vector, vector) - 1) < 1e-5, 'unit length again');
      // Same direction as the full vector's first 8 components.
      const prefix = full.data[0]!.embedding.slice(0, 8);
      const prefixNorm = Math.sqrt(cosine(prefix, prefix));
      vector.forEach((value, i) => assert.ok(Math.abs(value - prefix[i]! / prefixNorm) < 1e-5));
    }
    // The SDK's default base64 path decodes to the same truncated vector.
    const viaBase64 = await client.embeddings.create({ model: 'tiny-any-size', input: 'the cat sat', dimensions: 5 });
    assert.equal(viaBase64.data[0]!.embedding.length, 5);
    const refused = async (model: string, size: number, pattern: RegExp) =>
      assert.rejects(
        client.embeddings.create({ model, input: 'x', dimensions: size }),
        (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'dimensions' && pattern.test(error.message),
      );
    await refused('tiny-matryoshka', 12, /can be 8, 16, 32/);
    await refused('tiny-any-size', dimensions + 1, /any size up to 32/);
    await refused('tiny-minilm', 8, /does not mark it as truncatable/);
  });

  it('lists embedding models in /v1/models', async () => {
    const ids = (await client.models.list()).data.map((model) => model.id);
    assert.ok(ids.includes('tiny-minilm') && ids.includes('remote-embedder'));
  });
});
