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
        embeddings: [{ id: 'remote-embedder', provider: 'openai', base_url: upstream.url, model: 'bge-large', max_batch_size: 2 }],
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
    for (const input of [[1, 2, 3], [[1, 2], [3]]]) {
      await assert.rejects(
        client.embeddings.create({ model: 'tiny-minilm', input }),
        (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'input' && /check_embedding_ctx_length=False/.test(error.message),
      );
    }
  });

  it('lists embedding models in /v1/models', async () => {
    const ids = (await client.models.list()).data.map((model) => model.id);
    assert.ok(ids.includes('tiny-minilm') && ids.includes('remote-embedder'));
  });
});
