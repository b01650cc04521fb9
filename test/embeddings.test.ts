import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { env } from '@huggingface/transformers';
import { ConfigError } from '../src/config.ts';
import { EmbeddingModels } from '../src/embeddings/embedding-models.ts';
import { EmbeddingModelUnavailableError, EmbeddingUpstreamError } from '../src/embeddings/errors.ts';
import { type EmbedderLogger, LocalEmbedder, type LocalEmbedderOptions } from '../src/embeddings/local-embedder.ts';
import { RemoteEmbedder } from '../src/embeddings/remote-embedder.ts';
import { createTinyEmbeddingModel, type TinyModel } from './helpers/tiny-model.ts';
import { freePort } from './helpers/wait.ts';

function norm(vector: Float32Array): number {
  return Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));
}
function cosine(a: Float32Array, b: Float32Array): number {
  return a.reduce((sum, value, index) => sum + value * (b[index] ?? 0), 0) / (norm(a) * norm(b));
}
function recordingLogger(): EmbedderLogger & { lines: Array<{ level: string; obj: object; msg: string }> } {
  const lines: Array<{ level: string; obj: object; msg: string }> = [];
  return { lines, info: (obj, msg) => lines.push({ level: 'info', obj, msg }), warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }) };
}

let dir: string;
let tiny: TinyModel;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-embeddings-'));
  tiny = await createTinyEmbeddingModel(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function localEmbedder(overrides: Partial<LocalEmbedderOptions> = {}): LocalEmbedder {
  return new LocalEmbedder({
    id: tiny.modelId,
    source: tiny.modelId,
    dtype: 'q8',
    maxBatchSize: 8,
    modelsDir: tiny.modelsDir,
    allowDownload: false,
    ...overrides,
  });
}

describe('LocalEmbedder on a tiny offline model', () => {
  test('returns unit-length vectors of the model dimension, deterministically', async () => {
    const embedder = localEmbedder();
    const other = localEmbedder();
    const { vectors } = await embedder.embed(['hello world', 'another sentence']);
    assert.equal(await embedder.dimensions(), tiny.dimensions);
    assert.equal(vectors.length, 2);
    for (const vector of vectors) {
      assert.equal(vector.length, tiny.dimensions);
      assert.ok(Math.abs(norm(vector) - 1) < 1e-5, `norm ${norm(vector)}`);
    }
    assert.notDeepEqual(vectors[0], vectors[1]);
    assert.deepEqual((await other.embed(['hello world'])).vectors[0], vectors[0]);
    await Promise.all([embedder.close(), other.close()]);
  });

  test('texts sharing words are closer than unrelated texts', async () => {
    const embedder = localEmbedder();
    const [cat, otherCat, physics] = (
      await embedder.embed(['cats and dogs are friendly pets', 'dogs and cats are friendly animals', 'quantum chromodynamics lecture notes'])
    ).vectors as [Float32Array, Float32Array, Float32Array];
    assert.ok(cosine(cat, otherCat) > cosine(cat, physics) + 0.2, `${cosine(cat, otherCat)} vs ${cosine(cat, physics)}`);
    await embedder.close();
  });

  test('batches give the same vectors, in input order, as one text at a time', async () => {
    const texts = ['one', 'two words', 'three words here', 'a somewhat longer fourth text', 'five'];
    const batched = localEmbedder({ maxBatchSize: 2 });
    const result = await batched.embed(texts);
    const single = localEmbedder({ maxBatchSize: 1 });
    const oneByOne = [];
    for (const text of texts) oneByOne.push(...(await single.embed([text])).vectors);
    assert.equal(result.vectors.length, 5);
    for (const [index, vector] of result.vectors.entries()) {
      const expected = oneByOne[index] as Float32Array;
      assert.ok(vector.every((value, position) => Math.abs(value - (expected[position] ?? NaN)) < 1e-6), `vector ${index}`);
    }
    await Promise.all([batched.close(), single.close()]);
  });

  test('promptTokens counts real tokens ([CLS]/[SEP] included, padding excluded)', async () => {
    const embedder = localEmbedder();
    assert.equal((await embedder.embed(['hello world'])).promptTokens, 4);
    assert.equal((await embedder.embed(['hello world', 'the cat sat on the mat'])).promptTokens, 4 + 8);
    assert.deepEqual(await embedder.embed([]), { vectors: [], promptTokens: 0 });
    await embedder.close();
  });

  test('maxInputTokens comes from the tokenizer and long inputs are truncated to it', async () => {
    const embedder = localEmbedder();
    assert.equal(await embedder.maxInputTokens(), 512);
    assert.equal((await embedder.embed(['word '.repeat(2000)])).promptTokens, 512);
    await embedder.close();
  });

  test('a tokenizer without a real length limit falls back to max_position_embeddings', async () => {
    const unlimited = await createTinyEmbeddingModel(dir, { name: 'cairn-test/tiny-unlimited', modelMaxLength: 1e30 });
    const embedder = localEmbedder({ id: unlimited.modelId, source: unlimited.modelId });
    assert.equal(await embedder.maxInputTokens(), 512);
    assert.equal((await embedder.embed(['word '.repeat(2000)])).promptTokens, 512);
    await embedder.close();
  });

  test('concurrent calls share one load and each get their own results', async () => {
    const logger = recordingLogger();
    const embedder = localEmbedder({ logger, maxBatchSize: 2 });
    const inputs = [['alpha', 'beta', 'gamma'], ['delta'], ['epsilon', 'zeta']];
    const results = await Promise.all(inputs.map((texts) => embedder.embed(texts)));
    const reference = localEmbedder();
    for (const [index, texts] of inputs.entries()) {
      assert.deepEqual(results[index]?.vectors, (await reference.embed(texts)).vectors);
    }
    assert.equal(logger.lines.filter((line) => line.msg === 'embedding model loaded').length, 1);
    const files = logger.lines.filter((line) => line.msg === 'embedding model file ready').map((line) => (line.obj as { file: string }).file);
    assert.ok(files.includes('onnx/model_quantized.onnx') && files.includes('tokenizer.json'), files.join(', '));
    await Promise.all([embedder.close(), reference.close()]);
  });

  test('pooling and normalisation come from the sentence-transformers files over the options', async () => {
    const clsModel = await createTinyEmbeddingModel(dir, { name: 'cairn-test/tiny-cls', sentenceTransformers: { pooling: 'cls', normalize: false } });
    const logger = recordingLogger();
    const embedder = localEmbedder({ id: clsModel.modelId, source: clsModel.modelId, pooling: 'mean', normalize: true, logger });
    const [first, second] = (await embedder.embed(['hello world', 'something else entirely'])).vectors as [Float32Array, Float32Array];
    // CLS pooling over a context-free model: every text yields the [CLS] token's row, unnormalised.
    assert.deepEqual(first, second);
    assert.ok(Math.abs(norm(first) - 1) > 0.1, `norm ${norm(first)}`);
    assert.equal(logger.lines.filter((line) => line.level === 'warn').length, 2);
    await embedder.close();
  });

  test('without sentence-transformers files the options apply, else mean + normalize', async () => {
    const bare = await createTinyEmbeddingModel(dir, { name: 'cairn-test/tiny-bare', sentenceTransformers: false });
    const cls = localEmbedder({ id: bare.modelId, source: bare.modelId, pooling: 'cls', normalize: false });
    const clsVectors = (await cls.embed(['hello world', 'something else'])).vectors;
    assert.deepEqual(clsVectors[0], clsVectors[1]);
    const defaults = localEmbedder({ id: bare.modelId, source: bare.modelId });
    const [first, second] = (await defaults.embed(['hello world', 'something else'])).vectors as [Float32Array, Float32Array];
    assert.notDeepEqual(first, second);
    assert.ok(Math.abs(norm(first) - 1) < 1e-5);
    await Promise.all([cls.close(), defaults.close()]);
  });

  test('dtype picks the ONNX file: fp32 reads model.onnx, q8 needs model_quantized.onnx', async () => {
    const fp32Only = await createTinyEmbeddingModel(dir, { name: 'cairn-test/tiny-fp32', dtypes: ['fp32'] });
    const fp32 = localEmbedder({ id: fp32Only.modelId, source: fp32Only.modelId, dtype: 'fp32' });
    assert.equal((await fp32.embed(['hello'])).vectors[0]?.length, fp32Only.dimensions);
    const q8 = localEmbedder({ id: fp32Only.modelId, source: fp32Only.modelId, dtype: 'q8' });
    await assert.rejects(q8.embed(['hello']), (error: Error) => {
      assert.ok(error instanceof EmbeddingModelUnavailableError);
      assert.match(error.message, /model_quantized\.onnx/);
      return true;
    });
    await Promise.all([fp32.close(), q8.close()]);
  });

  test('a missing model rejects with EmbeddingModelUnavailableError naming it and the fix, and a later call retries', async () => {
    const missing = localEmbedder({ id: 'my-embedder', source: 'cairn-test/not-there-yet' });
    await assert.rejects(missing.dimensions(), (error: Error) => {
      assert.ok(error instanceof EmbeddingModelUnavailableError);
      assert.equal(error.status, 503);
      assert.match(error.message, /"my-embedder" \(source "cairn-test\/not-there-yet"\)/);
      assert.match(error.message, /CAIRN_MODELS_DIR/);
      assert.match(error.message, /CAIRN_ALLOW_MODEL_DOWNLOAD=true/);
      assert.match(error.message, /downloads are disabled/);
      assert.match(error.message, /CAIRN_EMBEDDING_MODEL=none/);
      return true;
    });
    await createTinyEmbeddingModel(dir, { name: 'cairn-test/not-there-yet' });
    assert.equal(await missing.dimensions(), 32);
    await missing.close();
  });

  test('a download that cannot reach the hub names the network, not the download switch, and the fixes that apply', async () => {
    // The hub's address is the library's module-level setting; point it at a port nothing listens on.
    const hub = env.remoteHost;
    env.remoteHost = `http://127.0.0.1:${await freePort()}/`;
    const offline = localEmbedder({ id: 'hub-model', source: 'cairn-test/hub-only', allowDownload: true, cacheDir: path.join(dir, 'cache-offline') });
    try {
      await assert.rejects(offline.dimensions(), (error: Error) => {
        assert.ok(error instanceof EmbeddingModelUnavailableError);
        assert.equal(error.loadFailureCause, 'network');
        assert.match(error.message, /Hugging Face hub cannot be reached/);
        assert.match(error.message, /ECONNREFUSED/);
        assert.doesNotMatch(error.message, /CAIRN_ALLOW_MODEL_DOWNLOAD/, 'downloads are already allowed');
        for (const fix of [/CAIRN_MODELS_DIR/, /remote embedder/, /CAIRN_EMBEDDING_MODEL=none/]) assert.match(error.message, fix);
        return true;
      });
    } finally {
      env.remoteHost = hub;
      await offline.close();
    }
  });

  test('a model the hub does not have is named as not found', async () => {
    const hubServer = createServer((_req, res) => {
      res.statusCode = 404;
      res.end('Entry not found');
    });
    await new Promise<void>((resolve) => hubServer.listen(0, '127.0.0.1', resolve));
    const hub = env.remoteHost;
    env.remoteHost = `http://127.0.0.1:${(hubServer.address() as AddressInfo).port}/`;
    const unknown = localEmbedder({ id: 'typo-model', source: 'cairn-test/no-such-model', allowDownload: true, cacheDir: path.join(dir, 'cache-404') });
    try {
      await assert.rejects(unknown.dimensions(), (error: Error) => {
        assert.ok(error instanceof EmbeddingModelUnavailableError);
        assert.equal(error.loadFailureCause, 'not_found');
        assert.match(error.message, /hub has no such model/);
        assert.match(error.message, /Check the model id/);
        assert.doesNotMatch(error.message, /CAIRN_ALLOW_MODEL_DOWNLOAD/);
        return true;
      });
    } finally {
      env.remoteHost = hub;
      await unknown.close();
      await new Promise((resolve) => hubServer.close(resolve));
    }
  });

  test('embed after close rejects', async () => {
    const embedder = localEmbedder();
    await embedder.embed(['warm up']);
    await embedder.close();
    await assert.rejects(embedder.embed(['too late']), /closed/);
  });
});

describe('EmbeddingModels registry', () => {
  const remote = { id: 'remote-bge', provider: 'openai', base_url: 'http://127.0.0.1:9/v1', max_batch_size: 8, max_concurrency: 2 } as const;

  test('serves configured models plus an implicit local default', async () => {
    const models = new EmbeddingModels({ configs: [remote], defaultModelId: tiny.modelId, modelsDir: tiny.modelsDir, allowDownload: false });
    assert.deepEqual(models.ids(), ['remote-bge', tiny.modelId]);
    assert.ok(models.get('remote-bge') instanceof RemoteEmbedder);
    assert.equal(models.get('unknown'), undefined);
    assert.equal(models.default(), models.get(tiny.modelId));
    assert.equal((await models.default()?.embed(['hello']))?.vectors[0]?.length, tiny.dimensions);
    await models.close();
  });

  test('"none" means no default embedder; duplicate or reserved ids are config errors', () => {
    const models = new EmbeddingModels({ configs: [remote], defaultModelId: 'none', allowDownload: false });
    assert.equal(models.defaultModelId, undefined);
    assert.equal(models.default(), undefined);
    assert.deepEqual(models.ids(), ['remote-bge']);
    assert.throws(() => new EmbeddingModels({ configs: [remote, remote], defaultModelId: 'none', allowDownload: false }), ConfigError);
    assert.throws(() => new EmbeddingModels({ configs: [{ ...remote, id: 'none' }], defaultModelId: 'none', allowDownload: false }), ConfigError);
  });

  test('an implicit BGE default uses CLS pooling when its files do not say otherwise', async () => {
    const bge = await createTinyEmbeddingModel(dir, { name: 'cairn-test/bge-tiny', sentenceTransformers: false });
    const models = new EmbeddingModels({ configs: [], defaultModelId: bge.modelId, modelsDir: dir, allowDownload: false });
    const vectors = (await models.default()?.embed(['hello world', 'something else']))?.vectors;
    assert.ok(vectors);
    assert.deepEqual(vectors[0], vectors[1]);
    await models.close();
  });
});

interface SeenRequest {
  url: string | undefined;
  authorization: string | undefined;
  body: { model: string; input: string[] };
}
type Reply = (status: number, payload: unknown) => void;

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** What the fake upstream returns for a text: easy to predict, different for every test input. */
function fakeVector(text: string): number[] {
  return [text.length, text.charCodeAt(0), 1];
}
function fakeTokens(text: string): number {
  return text.split(' ').length + 2;
}
function answerEmbeddings(request: SeenRequest, reply: Reply): void {
  // Reversed on purpose: the embedder must reorder by `index`.
  const data = request.body.input.map((text, index) => ({ object: 'embedding', index, embedding: fakeVector(text) })).reverse();
  const promptTokens = request.body.input.reduce((sum, text) => sum + fakeTokens(text), 0);
  reply(200, { object: 'list', model: request.body.model, data, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } });
}

describe('RemoteEmbedder against an OpenAI-compatible upstream', () => {
  const apiKey = 'sk-test-secret-key';
  const texts = ['first text', 'second', 'the third text', 'fourth one here', 'fifth'];
  let server: Server;
  let baseUrl: string;
  let seen: SeenRequest[] = [];
  let handle: (request: SeenRequest, reply: Reply) => void = answerEmbeddings;
  let connections = 0;

  before(async () => {
    server = createServer((request, response) => {
      void readBody(request).then((text) => {
        const seenRequest = { url: request.url, authorization: request.headers.authorization, body: JSON.parse(text) as SeenRequest['body'] };
        seen.push(seenRequest);
        handle(seenRequest, (status, payload) => {
          response.writeHead(status, { 'content-type': 'application/json' });
          response.end(JSON.stringify(payload));
        });
      });
    });
    server.on('connection', () => {
      connections += 1;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  function remoteEmbedder(overrides: Partial<ConstructorParameters<typeof RemoteEmbedder>[0]> = {}): RemoteEmbedder {
    seen = [];
    handle = answerEmbeddings;
    connections = 0;
    return new RemoteEmbedder({ id: 'bge-remote', baseUrl, model: 'BAAI/bge-small-en-v1.5', apiKey, maxBatchSize: 2, maxConcurrency: 1, ...overrides });
  }

  test('splits into batches, keeps input order and sums usage', async () => {
    const embedder = remoteEmbedder();
    const result = await embedder.embed(texts);
    assert.deepEqual(seen.map((request) => request.body.input), [texts.slice(0, 2), texts.slice(2, 4), texts.slice(4)]);
    assert.ok(seen.every((request) => request.url === '/v1/embeddings' && request.authorization === `Bearer ${apiKey}`));
    assert.ok(seen.every((request) => request.body.model === 'BAAI/bge-small-en-v1.5'));
    assert.deepEqual(result.vectors, texts.map((text) => Float32Array.from(fakeVector(text))));
    assert.equal(result.promptTokens, texts.reduce((sum, text) => sum + fakeTokens(text), 0));
    await embedder.close();
  });

  test('keeps at most maxConcurrency batches in flight', { timeout: 10_000 }, async () => {
    const embedder = remoteEmbedder({ maxBatchSize: 1, maxConcurrency: 2 });
    // The upstream answers only once two requests wait (or the last one arrived), so a client
    // that never overlaps requests times out. One that overlaps more opens more connections
    // (it sends every request before the first answer), and the pool keeps at most maxConcurrency.
    let held: Array<() => void> = [];
    let inFlight = 0;
    let mostInFlight = 0;
    handle = (request, reply) => {
      inFlight += 1;
      mostInFlight = Math.max(mostInFlight, inFlight);
      held.push(() => {
        inFlight -= 1;
        answerEmbeddings(request, reply);
      });
      if (held.length === 2 || seen.length === texts.length) {
        const releasing = held;
        held = [];
        for (const release of releasing) release();
      }
    };
    const result = await embedder.embed(texts);
    assert.equal(seen.length, 5);
    assert.equal(mostInFlight, 2);
    assert.ok(connections <= 2, `${connections} connections`);
    assert.deepEqual(result.vectors, texts.map((text) => Float32Array.from(fakeVector(text))));
    await embedder.close();
  });

  test('an upstream error rejects with its status and message, without the api key', async () => {
    const embedder = remoteEmbedder();
    handle = (request, reply) => reply(500, { error: { message: `model crashed (request had ${request.authorization})` } });
    await assert.rejects(embedder.embed(texts), (error: Error) => {
      assert.ok(error instanceof EmbeddingUpstreamError);
      assert.equal(error.upstreamStatus, 500);
      assert.match(error.message, /bge-remote/);
      assert.match(error.message, /HTTP 500: model crashed/);
      assert.ok(!error.message.includes(apiKey), error.message);
      return true;
    });
    await embedder.close();
  });

  test('an unreachable upstream rejects with a clear error', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const embedder = remoteEmbedder({ baseUrl: `http://127.0.0.1:${port}/v1` });
    await assert.rejects(embedder.embed(['hello']), (error: Error) => {
      assert.ok(error instanceof EmbeddingUpstreamError);
      assert.equal(error.upstreamStatus, undefined);
      assert.match(error.message, /could not be reached/);
      return true;
    });
    await embedder.close();
  });

  test('dimensions are configured, or learned from a probe', async () => {
    const configured = remoteEmbedder({ dimensions: 3 });
    assert.equal(await configured.dimensions(), 3);
    assert.equal(seen.length, 0);
    await configured.close();

    const probing = remoteEmbedder();
    assert.equal(await probing.dimensions(), 3);
    assert.deepEqual(seen.map((request) => request.body.input), [['dimension probe']]);
    assert.equal(await probing.maxInputTokens(), 512);
    await probing.close();
  });

  test('vectors that contradict the configured dimensions are rejected', async () => {
    const embedder = remoteEmbedder({ dimensions: 4 });
    await assert.rejects(embedder.embed(['hello']), /length 3, expected 4/);
    await embedder.close();
  });
});
