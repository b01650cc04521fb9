import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LocalEmbedder } from '../src/embeddings/local-embedder.ts';
import { LocalCrossEncoderReranker, type LocalRerankerOptions } from '../src/rag/local-reranker.ts';
import { RemoteReranker, type RemoteRerankerOptions } from '../src/rag/remote-reranker.ts';
import {
  createReranker,
  type RerankConfig,
  rerankConfigSchema,
  RerankModelUnavailableError,
  RerankUpstreamError,
} from '../src/rag/reranker.ts';
import { createTinyCrossEncoder, type TinyCrossEncoder } from './helpers/tiny-cross-encoder.ts';
import { createTinyEmbeddingModel } from './helpers/tiny-model.ts';

const sigmoid = (logit: number): number => 1 / (1 + Math.exp(-logit));
function assertScores(actual: number[], expected: number[]): void {
  assert.equal(actual.length, expected.length, `scores ${actual.join(', ')}`);
  actual.forEach((score, index) => assert.ok(Math.abs(score - expected[index]!) < 1e-9, `score ${index}: ${score} ≠ ${expected[index]}`));
}

let dir: string;
let tiny: TinyCrossEncoder;
let twoLabel: TinyCrossEncoder;
let short: TinyCrossEncoder;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-reranker-'));
  tiny = await createTinyCrossEncoder(dir);
  twoLabel = await createTinyCrossEncoder(dir, { name: 'cairn-test/two-label', numLabels: 2 });
  short = await createTinyCrossEncoder(dir, { name: 'cairn-test/short', maxLength: 16 });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function local(model: TinyCrossEncoder, overrides: Partial<LocalRerankerOptions> = {}): LocalCrossEncoderReranker {
  return new LocalCrossEncoderReranker({
    id: model.modelId,
    source: model.modelId,
    dtype: 'q8',
    maxBatchSize: 8,
    modelsDir: model.modelsDir,
    allowDownload: false,
    ...overrides,
  });
}

// The tiny model's logit is the number of (query, text) word-piece pairs with the same id.
const QUERY = 'cats chase mice';
const TEXTS = ['quantum chromodynamics lecture', 'mice fear cats', 'the cats sleep', 'cats chase mice daily', 'mice'];
const SHARED = [0, 2, 1, 3, 1];

describe('LocalCrossEncoderReranker on a tiny offline model', () => {
  test('scores are sigmoid(logit), one per text in input order; shared words rank higher', async () => {
    const reranker = local(tiny);
    const scores = await reranker.rerank(QUERY, TEXTS);
    assertScores(scores, SHARED.map(sigmoid));
    const ranking = TEXTS.map((_, index) => index).sort((a, b) => scores[b]! - scores[a]!);
    assert.equal(ranking[0], 3);
    assert.equal(ranking.at(-1), 0);
    assertScores(await reranker.rerank(QUERY, [...TEXTS].reverse()), [...SHARED].reverse().map(sigmoid));
    await reranker.close();
  });

  test('batches give the same scores as one text at a time', async () => {
    const batched = local(tiny, { maxBatchSize: 2 });
    const single = local(tiny, { maxBatchSize: 1 });
    const together = await batched.rerank(QUERY, TEXTS);
    const oneByOne: number[] = [];
    for (const text of TEXTS) oneByOne.push(...(await single.rerank(QUERY, [text])));
    assert.deepEqual(together, oneByOne);
    assertScores(together, SHARED.map(sigmoid));
    await Promise.all([batched.close(), single.close()]);
  });

  test('concurrent calls on one instance each get their own scores', async () => {
    const reranker = local(tiny, { maxBatchSize: 2 });
    const [forward, backward] = await Promise.all([reranker.rerank(QUERY, TEXTS), reranker.rerank(QUERY, [...TEXTS].reverse())]);
    assertScores(forward, SHARED.map(sigmoid));
    assertScores(backward, [...SHARED].reverse().map(sigmoid));
    await reranker.close();
  });

  test('two-label models score the positive (second) class', async () => {
    const reranker = local(twoLabel);
    // Logits are [-count, count]: softmax of the second label is sigmoid(2 · count).
    assertScores(await reranker.rerank(QUERY, TEXTS), SHARED.map((count) => sigmoid(2 * count)));
    await reranker.close();
  });

  test('pairs are truncated to the model limit longest-first, keeping both segments', async () => {
    const reranker = local(short, { maxBatchSize: 4 });
    const filler = Array.from({ length: 40 }, () => 'lorem').join(' ');
    const scores = await reranker.rerank(QUERY, [
      `mice ${filler} cats`, // the text is cut: "cats" falls beyond 16 tokens
      'cats', // fits
    ]);
    assertScores(scores, [sigmoid(1), sigmoid(1)]);
    // A query longer than the limit is cut too, and the text still reaches the model.
    const [longQuery] = await reranker.rerank(`cats ${filler}`, ['cats']);
    assertScores([longQuery!], [sigmoid(1)]);
    await reranker.close();
  });

  test('a missing model fails with a typed error naming it and the fix; empty input needs no model', async () => {
    const reranker = local(tiny, { id: 'my-reranker', source: 'cairn-test/absent-reranker' });
    assert.deepEqual(await reranker.rerank(QUERY, []), []);
    const error = await reranker.rerank(QUERY, ['text']).then(
      () => assert.fail('expected a rejection'),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof RerankModelUnavailableError, String(error));
    assert.equal(error.status, 503);
    assert.equal(error.code, 'rerank_model_unavailable');
    assert.equal(error.modelId, 'my-reranker');
    assert.match(error.message, /"my-reranker" \(source "cairn-test\/absent-reranker"\)/);
    assert.match(error.message, /CAIRN_MODELS_DIR/);
    assert.match(error.message, /CAIRN_ALLOW_MODEL_DOWNLOAD=true/);
    await reranker.close();
  });

  test('an aborted signal stops the call; a closed reranker refuses work', async () => {
    const reranker = local(tiny);
    const controller = new AbortController();
    controller.abort(new Error('caller went away'));
    await assert.rejects(reranker.rerank(QUERY, TEXTS, controller.signal), /caller went away/);
    await reranker.close();
    await assert.rejects(reranker.rerank(QUERY, TEXTS), /closed/);
  });

  test('an embedder and a reranker in other models directories load at the same time (one load lock)', async () => {
    // transformers.js's `env` names one models directory at a time: interleaved loads would look in the wrong one.
    const embedderDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-reranker-embedder-'));
    try {
      const model = await createTinyEmbeddingModel(embedderDir);
      for (let round = 0; round < 3; round += 1) {
        const embedder = new LocalEmbedder({
          id: model.modelId, source: model.modelId, dtype: 'q8', maxBatchSize: 8, modelsDir: model.modelsDir, allowDownload: false,
        });
        const reranker = local(tiny);
        const [embedded, scores] = await Promise.all([embedder.embed(['cats chase mice']), reranker.rerank(QUERY, TEXTS)]);
        assert.equal(embedded.vectors[0]?.length, model.dimensions);
        assertScores(scores, SHARED.map(sigmoid));
        await Promise.all([embedder.close(), reranker.close()]);
      }
    } finally {
      await rm(embedderDir, { recursive: true, force: true });
    }
  });

  test('createReranker builds a local reranker from the config block with its defaults', async () => {
    const config = rerankConfigSchema.parse({ provider: 'local', source: tiny.modelId });
    assert.deepEqual(config, { provider: 'local', source: tiny.modelId, dtype: 'q8', max_batch_size: 16 });
    const reranker = createReranker(config, { modelsDir: tiny.modelsDir, allowDownload: false });
    assert.ok(reranker instanceof LocalCrossEncoderReranker);
    assert.equal(reranker.id, tiny.modelId);
    assertScores(await reranker.rerank(QUERY, TEXTS.slice(0, 2)), SHARED.slice(0, 2).map(sigmoid));
    await reranker.close();
  });
});

describe('rerankConfigSchema', () => {
  test('validates each provider and applies defaults', () => {
    assert.deepEqual(rerankConfigSchema.parse({ provider: 'tei', base_url: 'http://tei:8080' }), {
      provider: 'tei',
      base_url: 'http://tei:8080',
      timeout_ms: 10_000,
    });
    const cohere = rerankConfigSchema.parse({ provider: 'cohere', base_url: 'https://api.cohere.com/v2', model: 'rerank-v3.5', top_n: 5 });
    assert.equal(cohere.provider === 'cohere' && cohere.top_n, 5);
    assert.equal(rerankConfigSchema.safeParse({ provider: 'cohere', base_url: 'https://api.cohere.com/v2' }).success, false);
    assert.equal(rerankConfigSchema.safeParse({ provider: 'tei', base_url: 'not a url' }).success, false);
    assert.equal(rerankConfigSchema.safeParse({ provider: 'openai', base_url: 'http://x' }).success, false);
    assert.equal(rerankConfigSchema.safeParse({ provider: 'local', source: 'x', top_n: 0 }).success, false);
  });
});

const API_KEY = 'sk-rerank-secret-123';
/** The stub server's relevance per document: answers come back sorted by it, not in input order. */
const RELEVANCE: Record<string, number> = { alpha: 0.2, beta: 0.9, gamma: 0.5 };
interface Received {
  url: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

describe('RemoteReranker against a stub rerank server', () => {
  let server: Server;
  let base: string;
  const received: Received[] = [];

  async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  }
  function send(res: ServerResponse, status: number, payload: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
  }
  const ranked = (documents: string[]): Array<{ index: number; score: number }> =>
    documents.map((text, index) => ({ index, score: RELEVANCE[text] ?? 0 })).sort((a, b) => b.score - a.score);

  before(async () => {
    server = createServer((req, res) => {
      void readBody(req).then((body) => {
        received.push({ url: req.url ?? '', authorization: req.headers.authorization, body });
        switch (req.url) {
          case '/rerank':
            return send(res, 200, ranked(body.texts as string[]));
          case '/v1/rerank': {
            const results = ranked(body.documents as string[]).slice(0, body.top_n as number);
            return send(res, 200, { id: 'r', results: results.map(({ index, score }) => ({ index, relevance_score: score })) });
          }
          case '/echo-key/rerank': // a badly behaved server that echoes the credentials
            return send(res, 500, { error: { message: `model crashed (auth was ${req.headers.authorization})` } });
          case '/duplicate/rerank':
            return send(res, 200, [{ index: 0, score: 1 }, { index: 0, score: 0.5 }]);
          case '/wrong-shape/rerank':
            return send(res, 200, { scores: [1, 2] });
          case '/hang/rerank':
            return; // never answers: the client's timeout must end the call
          default:
            return send(res, 404, { error: 'no such route' });
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function remote(overrides: Partial<RemoteRerankerOptions>): RemoteReranker {
    return new RemoteReranker({ id: 'stub', api: 'tei', baseUrl: base, apiKey: API_KEY, timeoutMs: 5_000, ...overrides });
  }
  async function failure(promise: Promise<unknown>): Promise<RerankUpstreamError> {
    const error = await promise.then(
      () => assert.fail('expected a rejection'),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof RerankUpstreamError, String(error));
    assert.equal(error.status, 502);
    assert.ok(!error.message.includes(API_KEY), error.message);
    return error;
  }

  test('tei: sends query, texts and raw_scores false; maps sorted results back to input order', async () => {
    const reranker = createReranker(rerankConfigSchema.parse({ provider: 'tei', base_url: base, api_key: API_KEY }), { allowDownload: false });
    received.length = 0;
    assert.deepEqual(await reranker.rerank('q', ['alpha', 'beta', 'gamma']), [0.2, 0.9, 0.5]);
    assert.deepEqual(received, [
      { url: '/rerank', authorization: `Bearer ${API_KEY}`, body: { query: 'q', texts: ['alpha', 'beta', 'gamma'], raw_scores: false, truncate: true } },
    ]);
    await reranker.close();
  });

  test('cohere: sends model, documents and top_n; texts left out by top_n score -Infinity', async () => {
    const config = rerankConfigSchema.parse({ provider: 'cohere', base_url: `${base}/v1`, model: 'rerank-small', top_n: 2 });
    const reranker = createReranker(config, { allowDownload: false });
    received.length = 0;
    assert.deepEqual(await reranker.rerank('q', ['gamma', 'alpha', 'beta']), [0.5, Number.NEGATIVE_INFINITY, 0.9]);
    assert.deepEqual(received, [
      { url: '/v1/rerank', authorization: undefined, body: { model: 'rerank-small', query: 'q', documents: ['gamma', 'alpha', 'beta'], top_n: 2 } },
    ]);
    assert.equal(reranker.id, 'rerank-small');
    await reranker.close();
  });

  test('an HTTP error becomes a clear error with the status and the server message, without the api key', async () => {
    const reranker = remote({ baseUrl: `${base}/echo-key` });
    const error = await failure(reranker.rerank('q', ['alpha']));
    assert.equal(error.upstreamStatus, 500);
    assert.match(error.message, /HTTP 500: model crashed \(auth was Bearer \[redacted\]\)/);
    assert.match(error.message, /"stub" \(127\.0\.0\.1:\d+\)/);
    await reranker.close();
  });

  test('unusable answers are rejected: wrong shape, duplicate indices', async () => {
    const wrongShape = remote({ baseUrl: `${base}/wrong-shape` });
    assert.match((await failure(wrongShape.rerank('q', ['alpha', 'beta']))).message, /without an array of \{index, score\}/);
    const duplicate = remote({ baseUrl: `${base}/duplicate` });
    assert.match((await failure(duplicate.rerank('q', ['alpha', 'beta']))).message, /invalid result index 0/);
    await Promise.all([wrongShape.close(), duplicate.close()]);
  });

  test('a server that does not answer in time fails with a timeout error', async () => {
    const reranker = remote({ baseUrl: `${base}/hang`, timeoutMs: 150 });
    const error = await failure(reranker.rerank('q', ['alpha']));
    assert.equal(error.upstreamStatus, undefined);
    assert.match(error.message, /did not answer within 150 ms/);
    await reranker.close();
  });

  test('a closed port fails with a could-not-be-reached error; a caller abort is passed through', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const reranker = remote({ baseUrl: `http://127.0.0.1:${port}` });
    const error = await failure(reranker.rerank('q', ['alpha']));
    assert.match(error.message, /could not be reached: .*ECONNREFUSED|could not be reached: connect/);

    const hanging = remote({ baseUrl: `${base}/hang` });
    const controller = new AbortController();
    const call = hanging.rerank('q', ['alpha'], controller.signal);
    const reason = new Error('client disconnected');
    controller.abort(reason);
    await assert.rejects(call, (caught: unknown) => caught === reason);
    assert.deepEqual(await hanging.rerank('q', []), []);
    await Promise.all([reranker.close(), hanging.close()]);
  });
});

// Keeps the exported config type in the test's type check.
const _typed: RerankConfig = { provider: 'tei', base_url: 'http://x', timeout_ms: 1 };
