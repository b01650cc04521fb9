/**
 * Secrets stay out of logs and error messages: Cairn's API keys (valid, wrong, revoked), the
 * upstream model and embedding keys from the model config, and the Qdrant API key. Every
 * response body and the captured log are searched for each of them after calls that succeed,
 * fail upstream (with error bodies that echo the credentials back), cannot reach the upstream,
 * or fail validation.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startCairn, stubModel, type TestCairn } from './helpers/harness.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';
import { freePort } from './helpers/wait.ts';

const secret = (prefix: string): string => `${prefix}${randomBytes(12).toString('hex')}`;
const UPSTREAM_KEY = secret('sk-upstream-');
const EMBEDDER_KEY = secret('sk-embedder-');
const QDRANT_KEY = secret('qdrant-key-');
const WRONG_KEY = secret('sk-cairn-');

describe('secrets never reach logs or error messages', () => {
  let upstream: StubUpstream;
  let embedder: StubUpstream;
  let cairn: TestCairn;
  let revokedKey: string;
  /** Every response body Cairn sent in this file. */
  const bodies: string[] = [];
  const secrets = (): Record<string, string> => ({
    'the caller\'s Cairn key': cairn.key,
    'a wrong Cairn key': WRONG_KEY,
    'a revoked Cairn key': revokedKey,
    'the upstream model key': UPSTREAM_KEY,
    'the upstream embedding key': EMBEDDER_KEY,
    'the Qdrant key': QDRANT_KEY,
  });

  /** `quotesCaller`: the answer may quote what this caller sent (see the validation test); not kept in `bodies`. */
  const call = async (path: string, body: unknown, key = cairn.key, quotesCaller = false) => {
    const response = await fetch(`${cairn.baseURL}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!quotesCaller) bodies.push(text);
    return { status: response.status, text };
  };
  const chat = (model: string, extra: Record<string, unknown> = {}) =>
    call('/chat/completions', { model, messages: [{ role: 'user', content: 'hello' }], ...extra });

  before(async () => {
    [upstream, embedder] = await Promise.all([
      StubUpstream.start({ name: 'guarded', apiKey: UPSTREAM_KEY }),
      StubUpstream.start({ name: 'embedder', apiKey: EMBEDDER_KEY }),
    ]);
    const gone = `http://127.0.0.1:${await freePort()}/v1`;
    cairn = await startCairn({
      env: { QDRANT_API_KEY: QDRANT_KEY },
      modelConfig: {
        models: [
          stubModel('guarded', [upstream.url]),
          stubModel('unreachable', [gone]),
        ].map((model) => ({ ...model, upstreams: (model.upstreams as object[]).map((entry) => ({ ...entry, api_key: UPSTREAM_KEY })) })),
        embeddings: [{ id: 'remote', provider: 'openai', base_url: embedder.url, model: 'bge', api_key: EMBEDDER_KEY }],
      },
    });
    const revoked = await cairn.services.keys.create('project-a', 'old');
    revokedKey = revoked.key;
    assert.equal(await cairn.services.keys.revoke(revoked.info.id), true);
  });

  after(async () => {
    await cairn.stop();
    await Promise.all([upstream.close(), embedder.close()]);
  });

  it('serves successful calls with the upstream keys (which the upstreams check)', async () => {
    assert.equal((await chat('guarded')).status, 200);
    const streamed = await chat('guarded', { stream: true });
    assert.equal(streamed.status, 200);
    assert.match(streamed.text, /\[DONE\]/);
    assert.equal((await call('/completions', { model: 'guarded', prompt: 'hi' })).status, 200);
    assert.equal((await call('/embeddings', { model: 'remote', input: 'hello' })).status, 200);
    assert.equal(upstream.requests.at(-1)!.headers.authorization, `Bearer ${UPSTREAM_KEY}`, 'the key is sent to the upstream, and only there');
    const kb = await call('/knowledge_bases', { name: 'kb', embedding_model: 'none' });
    assert.equal(kb.status, 200, kb.text);
    const kbId = (JSON.parse(kb.text) as { id: string }).id;
    assert.equal((await call(`/knowledge_bases/${kbId}/search`, { query: 'anything' })).status, 200, 'Qdrant calls work with the key set');
  });

  it('refuses wrong, revoked and malformed Cairn keys without repeating them', async () => {
    for (const [key, label] of [[WRONG_KEY, 'wrong'], [revokedKey, 'revoked'], [`${WRONG_KEY} ${WRONG_KEY}`, 'malformed']] as const) {
      const response = await call('/chat/completions', { model: 'guarded', messages: [] }, key);
      assert.equal(response.status, 401, `${label}: ${response.text}`);
      assert.equal((JSON.parse(response.text) as { error: { code: string } }).error.code, 'invalid_api_key');
    }
  });

  it('does not pass on upstream error bodies that echo the upstream key or Authorization header', async () => {
    const echo = `invalid credentials in request: Authorization: Bearer ${UPSTREAM_KEY} (api_key=${UPSTREAM_KEY})`;
    const shapes: unknown[] = [
      { error: { message: echo, type: 'invalid_request_error', param: null, code: null } },
      { object: 'error', message: echo, type: 'BadRequestError', param: null, code: 400 },
      { detail: echo },
      echo,
      // A JSON escape hides the key from a search of the raw body.
      `{"error":{"message":"key \\u${UPSTREAM_KEY.charCodeAt(0).toString(16).padStart(4, '0')}${UPSTREAM_KEY.slice(1)} refused","param":"${UPSTREAM_KEY}"}}`,
    ];
    for (const status of [400, 401, 403, 404, 413, 422, 429, 500, 502, 503]) {
      for (const errorBody of shapes) {
        upstream.setDefault({ status, errorBody, headers: { 'retry-after': '0' } });
        for (const stream of [false, true]) {
          const response = await chat('guarded', { stream });
          assert.ok(response.status >= 400, `upstream ${status} → ${response.status}`);
          assert.ok(!response.text.includes(UPSTREAM_KEY), `upstream ${status} (${JSON.stringify(errorBody).slice(0, 40)}…) leaked the key: ${response.text}`);
          assert.match(response.text, /"error"/);
        }
      }
    }
    upstream.setDefault({});

    embedder.setDefault({ status: 500, errorBody: { error: { message: `bad key ${EMBEDDER_KEY}` } } });
    const embedding = await call('/embeddings', { model: 'remote', input: 'hello' });
    assert.ok(embedding.status >= 500 && !embedding.text.includes(EMBEDDER_KEY), embedding.text);
    embedder.setDefault({ status: 400, errorBody: `bad key ${EMBEDDER_KEY}` });
    const invalid = await call('/embeddings', { model: 'remote', input: 'hello' });
    assert.ok(invalid.status >= 400 && !invalid.text.includes(EMBEDDER_KEY), invalid.text);
    embedder.setDefault({});
  });

  it('reports an unreachable upstream without its credentials', async () => {
    const response = await chat('unreachable');
    assert.equal(response.status, 502, response.text);
    assert.ok(!response.text.includes(UPSTREAM_KEY));
  });

  it('rejects bodies holding keys in the wrong places without quoting them', async () => {
    const key = cairn.key;
    const invalid: Array<Record<string, unknown>> = [
      { model: 'guarded', messages: key },
      { model: 'guarded', messages: [{ role: key, content: 'x' }] },
      { model: 'guarded', messages: [{ role: 'user', content: 'x' }], temperature: key },
      { model: 'guarded', messages: [{ role: 'user', content: 'x' }], stop: [key, key, key, key, key] },
      { model: 'guarded', messages: [{ role: 'user', content: 'x' }], retrieval: { max_num_results: UPSTREAM_KEY } },
      { model: [key, UPSTREAM_KEY], messages: [{ role: 'user', content: 'x' }] },
    ];
    for (const body of invalid) {
      const response = await call('/chat/completions', body);
      assert.equal(response.status, 400, response.text);
      assert.ok(!response.text.includes(key) && !response.text.includes(UPSTREAM_KEY), `quoted a key: ${response.text}`);
    }
    // Names the caller made up are quoted back to that caller, as OpenAI quotes unknown arguments and
    // model ids: that tells the caller nothing new. They must still stay out of the log (last test).
    for (const body of [
      { model: 'guarded', messages: [{ role: 'user', content: 'x' }], retrieval: { [key]: 1 } },
      { model: key, messages: [{ role: 'user', content: 'x' }] },
    ]) {
      const quoted = await call('/chat/completions', body, key, true);
      assert.ok(quoted.status === 400 || quoted.status === 404, quoted.text);
    }
    const search = await call('/knowledge_bases', { name: 'x', embedding_model: 'none', chunking_strategy: { type: key } });
    assert.equal(search.status, 400);
    assert.ok(!search.text.includes(key), search.text);
  });

  it('leaves no secret in any log line or response body', async () => {
    // The access log line is written when the response closes: wait for the last request's line.
    const deadline = Date.now() + 5_000;
    while (cairn.logs.lines.filter((line) => line.includes('"msg":"request"')).length < bodies.length && Date.now() < deadline) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    const log = cairn.logs.text();
    assert.ok(log.includes('"status":401') && log.includes('"status":502'), 'the log saw the failures');
    for (const [name, value] of Object.entries(secrets())) {
      assert.ok(!log.includes(value), `${name} appears in the log`);
      const leaking = bodies.find((body) => body.includes(value));
      assert.equal(leaking, undefined, `${name} appears in a response body`);
    }
  });
});
