/** The HTTP contract around the proxy: errors, auth, request ids, usage scoping, operations endpoints. */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startCairn, stubModel, type TestCairn } from './helpers/harness.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';
import { until } from './helpers/wait.ts';

/** Sends raw bytes and reads until the server closes; a reset before any answer fails the test (as it did for long URLs). */
function rawExchange(port: number, request: string): Promise<{ status: number; error: { type: string; message: string } | undefined; raw: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    const parts: Buffer[] = [];
    socket.on('data', (part: Buffer) => parts.push(part));
    socket.on('error', (error) => reject(new Error(`connection failed before an answer: ${error.message}`)));
    socket.on('close', () => {
      const raw = Buffer.concat(parts).toString('utf8');
      const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
      let error: { type: string; message: string } | undefined;
      try {
        error = (JSON.parse(body) as { error: { type: string; message: string } }).error;
      } catch {
        error = undefined;
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0), error, raw });
    });
  });
}

describe('HTTP core', () => {
  let upstream: StubUpstream;
  let cairn: TestCairn;

  before(async () => {
    upstream = await StubUpstream.start({ name: 'core', apiKey: 'upstream-secret-key-123' });
    cairn = await startCairn({
      modelConfig: {
        models: [
          {
            ...stubModel('llama-3.1-8b', [upstream.url], { aliases: ['gpt-4o-mini'] }),
            upstreams: [{ base_url: upstream.url, model: 'meta-llama/Llama-3.1-8B-Instruct', api_key: 'upstream-secret-key-123' }],
          },
          stubModel('dead-model', ['http://127.0.0.1:9/v1'], { retries: { max_retries: 0 } }),
        ],
      },
      env: { CAIRN_BODY_LIMIT_BYTES: '4096' },
    });
  });

  after(async () => {
    await cairn.stop();
    await upstream.close();
  });

  const post = (path: string, body: string, key = cairn.key, headers: Record<string, string> = {}) =>
    fetch(`${cairn.baseURL}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body,
    });

  async function expectEnvelope(response: Response, status: number, param: string | null = null) {
    assert.equal(response.status, status);
    const body = (await response.json()) as { error: { message: string; type: string; param: string | null; code: unknown } };
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
    assert.ok(body.error.message.length > 0);
    assert.equal(body.error.param, param);
    return body.error;
  }

  it('answers malformed JSON with a 400 envelope', async () => {
    await expectEnvelope(await post('/chat/completions', '{"model": "llama-3.1-8b", "messages": ['), 400);
  });

  it('answers a body that is not an object with a 400 envelope', async () => {
    await expectEnvelope(await post('/chat/completions', '[1, 2, 3]'), 400);
    await expectEnvelope(await post('/chat/completions', '"text"'), 400);
  });

  it('names the invalid parameter', async () => {
    const error = await expectEnvelope(
      await post('/chat/completions', JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'robot', content: 'x' }] })),
      400,
      'messages[0].role',
    );
    assert.equal(error.type, 'invalid_request_error');
    await expectEnvelope(await post('/chat/completions', JSON.stringify({ model: 'llama-3.1-8b', messages: [] })), 400, 'messages');
    await expectEnvelope(await post('/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x' }] })), 400, 'model');
  });

  it('answers an oversize body with 413', async () => {
    const big = JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'x'.repeat(10_000) }] });
    await expectEnvelope(await post('/chat/completions', big), 413);
  });

  it('answers hostile paths, parameters and text with 4xx envelopes, never 500', async () => {
    const get = (path: string) => fetch(`${cairn.baseURL}${path}`, { headers: { authorization: `Bearer ${cairn.key}` } });
    await expectEnvelope(await get('/files/%ff'), 400);
    await expectEnvelope(await get('/files/abc%00def'), 400);
    await expectEnvelope(await get('/usage?start_time=9000000000000'), 400, 'start_time');
    const nul = await fetch(`${cairn.baseURL}/knowledge_bases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cairn.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'a\u0000b', embedding_model: 'none' }),
    });
    await expectEnvelope(nul, 400, 'name');
    const surrogate = await fetch(`${cairn.baseURL}/knowledge_bases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cairn.key}`, 'content-type': 'application/json' },
      body: '{"name":"x","embedding_model":"none","metadata":{"a":"\\ud800"}}',
    });
    await expectEnvelope(surrogate, 400, 'metadata.a');
    const gzip = await fetch(`${cairn.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cairn.key}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: 'definitely not gzip',
    });
    await expectEnvelope(gzip, 400);
  });

  it('answers what the HTTP parser refuses (a 100 KB id, huge headers, broken HTTP) with an envelope, not a reset', async () => {
    const port = Number(new URL(cairn.url).port);
    const longUrl = await rawExchange(port, `GET /v1/files/file-${'a'.repeat(100_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${cairn.key}\r\n\r\n`);
    assert.equal(longUrl.status, 414, longUrl.raw.slice(0, 200));
    assert.equal(longUrl.error?.type, 'invalid_request_error');
    assert.match(longUrl.error?.message ?? '', /URL is too long/);

    const hugeHeaders = await rawExchange(port, `GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n${'X-Filler: yes\r\n'.repeat(3_000)}\r\n`);
    assert.equal(hugeHeaders.status, 431, hugeHeaders.raw.slice(0, 200));
    assert.equal(hugeHeaders.error?.type, 'invalid_request_error');

    const broken = await rawExchange(port, 'GET /v1/models HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n');
    assert.equal(broken.status, 400, broken.raw.slice(0, 200));
    assert.equal(broken.error?.type, 'invalid_request_error');

    // The server still serves after all that.
    assert.equal((await fetch(`${cairn.baseURL}/models`, { headers: { authorization: `Bearer ${cairn.key}` } })).status, 200);
  });

  it('answers unknown routes with 404 and wrong methods with 405, both as envelopes', async () => {
    const unknown = await fetch(`${cairn.baseURL}/nothing-here`, { headers: { authorization: `Bearer ${cairn.key}` } });
    const error = await expectEnvelope(unknown, 404);
    assert.match(error.message, /GET \/v1\/nothing-here/);
    const wrongMethod = await fetch(`${cairn.baseURL}/chat/completions`, { headers: { authorization: `Bearer ${cairn.key}` } });
    assert.equal(wrongMethod.headers.get('allow'), 'POST');
    await expectEnvelope(wrongMethod, 405);
  });

  it('refuses a missing, malformed or revoked key with 401', async () => {
    const missing = await fetch(`${cairn.baseURL}/models`);
    assert.equal((await expectEnvelope(missing, 401)).code, 'invalid_api_key');
    const malformed = await fetch(`${cairn.baseURL}/models`, { headers: { authorization: 'Basic abc' } });
    await expectEnvelope(malformed, 401);

    const { key, info } = await cairn.services.keys.create('to-revoke');
    assert.equal((await cairn.client({ apiKey: key }).models.list()).object, 'list');
    await cairn.services.keys.revoke(info.id);
    await assert.rejects(cairn.client({ apiKey: key }).models.list(), OpenAI.AuthenticationError);
  });

  it('echoes a client request id and makes one otherwise', async () => {
    const response = await fetch(`${cairn.url}/healthz`, { headers: { 'x-request-id': 'client-id-42' } });
    assert.equal(response.headers.get('x-request-id'), 'client-id-42');
    const hostile = await fetch(`${cairn.url}/healthz`, { headers: { 'x-request-id': 'bad id with spaces' } });
    assert.match(hostile.headers.get('x-request-id') ?? '', /^req_[A-Za-z0-9]{24}$/);
  });

  it('lists and retrieves models and aliases', async () => {
    const client = cairn.client();
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.deepEqual(ids.sort(), ['dead-model', 'extractive', 'gpt-4o-mini', 'llama-3.1-8b']);
    assert.equal((await client.models.retrieve('gpt-4o-mini')).id, 'gpt-4o-mini');
    await assert.rejects(client.models.retrieve('nope'), OpenAI.NotFoundError);
  });

  it('proxies legacy completions, plain and streaming', async () => {
    const client = cairn.client();
    const completion = await client.completions.create({ model: 'gpt-4o-mini', prompt: 'Once upon a time' });
    assert.equal(completion.object, 'text_completion');
    assert.equal(completion.model, 'llama-3.1-8b');
    assert.match(completion.choices[0]!.text, /stub answer from core/);
    assert.equal(upstream.requests.at(-1)!.body.model, 'meta-llama/Llama-3.1-8B-Instruct');
    assert.equal(upstream.requests.at(-1)!.headers.authorization, 'Bearer upstream-secret-key-123');

    let text = '';
    for await (const chunk of await client.completions.create({ model: 'llama-3.1-8b', prompt: 'Hi', stream: true })) {
      text += chunk.choices[0]?.text ?? '';
    }
    assert.match(text, /stub answer from core/);
  });

  it('shows each project only its own usage', async () => {
    const keyB = await cairn.newKey('project-b');
    const clientA = cairn.client();
    const clientB = cairn.client({ apiKey: keyB });
    await clientA.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'one two three' }] });
    await clientB.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'four' }] });
    const stream = await clientB.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'five six' }], stream: true });
    for await (const _chunk of stream) {
      /* drain */
    }
    const usageOf = async (key: string) => {
      const response = await fetch(`${cairn.baseURL}/usage`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(response.status, 200);
      return ((await response.json()) as { data: Array<{ model: string; requests: number; prompt_tokens: number }> }).data;
    };
    const usageB = await usageOf(keyB);
    assert.deepEqual(usageB.map(({ model, requests, prompt_tokens }) => ({ model, requests, prompt_tokens })), [
      { model: 'llama-3.1-8b', requests: 2, prompt_tokens: 3 },
    ]);
    const usageA = await usageOf(cairn.key);
    assert.ok(usageA.every((row) => row.requests >= 1));
    assert.ok(!usageA.some((row) => row.prompt_tokens === 3 && row.requests === 2), 'A does not see B');
  });

  it('serves /healthz, /metrics and a /readyz that names the failing upstream', async () => {
    assert.deepEqual(await (await fetch(`${cairn.url}/healthz`)).json(), { status: 'ok' });
    const ready = await fetch(`${cairn.url}/readyz`);
    assert.equal(ready.status, 503);
    const body = (await ready.json()) as { checks: Record<string, string>; error: { message: string } };
    assert.equal(body.checks.database, 'ok');
    assert.equal(body.checks['model:llama-3.1-8b'], 'ok');
    assert.match(body.checks['model:dead-model']!, /^failing/);
    assert.match(body.error.message, /model:dead-model/);

    await cairn.client().chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'count me' }] });
    const metrics = await (await fetch(`${cairn.url}/metrics`)).text();
    assert.match(metrics, /cairn_http_requests_total\{route="\/v1\/chat\/completions",model="llama-3.1-8b",status="200"\} \d+/);
    assert.match(metrics, /cairn_upstream_response_seconds_bucket\{[^}]*model="llama-3.1-8b"/);
    assert.match(metrics, /cairn_tokens_total\{model="llama-3.1-8b",kind="prompt"\} \d+/);
  });

  it('answers GET / with a signpost to /v1, /openapi.json and the docs instead of a 404', async () => {
    const response = await fetch(`${cairn.url}/`);
    assert.equal(response.status, 200);
    const body = (await response.json()) as { api: string; openapi: string; message: string };
    assert.equal(body.api, '/v1');
    assert.equal(body.openapi, '/openapi.json');
    assert.match(body.message, /OpenAI-compatible/);
    assert.equal((await fetch(`${cairn.url}${body.openapi}`)).status, 200, 'the signpost points somewhere real');
  });

  it('logs the full original path of each request, without its query string', async () => {
    const kb = await cairn.client().vectorStores.create({ name: 'logged', ...({ embedding_model: 'none' } as object) });
    await cairn.client().chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'log me' }] });
    await fetch(`${cairn.baseURL}/vector_stores/${kb.id}/files?limit=5&secret=hunter2`, { headers: { authorization: `Bearer ${cairn.key}` } });
    const paths = () =>
      cairn.logs.lines
        .map((line) => JSON.parse(line) as { msg: string; method?: string; path?: string })
        .filter((entry) => entry.msg === 'request')
        .map((entry) => `${entry.method} ${entry.path}`);
    const expected = ['POST /v1/vector_stores', 'POST /v1/chat/completions', `GET /v1/vector_stores/${kb.id}/files`];
    await until(`request lines for ${expected.join(', ')} (logged: ${paths().join(', ')})`, () => expected.every((entry) => paths().includes(entry)), 10_000);
    assert.ok(!cairn.logs.text().includes('hunter2'), 'no query string in the log');
  });

  it('answers an unreachable model with 502 and never logs keys', async () => {
    await assert.rejects(
      cairn.client().chat.completions.create({ model: 'dead-model', messages: [{ role: 'user', content: 'hi' }] }),
      (error: unknown) => error instanceof OpenAI.InternalServerError && error.status === 502,
    );
    const logs = cairn.logs.text();
    assert.match(logs, /"msg":"request"/, 'requests are logged');
    assert.ok(!logs.includes(cairn.key), 'the caller key is not logged');
    assert.ok(!logs.includes('upstream-secret-key-123'), 'the upstream key is not logged');
  });
});
