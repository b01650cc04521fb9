import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { StubUpstream } from './helpers/stub-upstream.ts';

const json = { 'content-type': 'application/json' };

function post(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: json, body: typeof body === 'string' ? body : JSON.stringify(body), ...init });
}

function chat(stub: StubUpstream, extra: Record<string, unknown> = {}, init: RequestInit = {}): Promise<Response> {
  return post(`${stub.url}/chat/completions`, { model: 'my-model', messages: [{ role: 'user', content: 'hi there' }], ...extra }, init);
}

/** Parses an SSE body into its `data:` payloads, checking the framing on the way. */
function sseData(text: string): string[] {
  assert.ok(text.endsWith('\n\n'), 'SSE body ends with a blank line');
  return text.split('\n\n').filter((e) => e !== '').map((event) => {
    assert.match(event, /^data: /);
    return event.slice('data: '.length);
  });
}

describe('StubUpstream', () => {
  let stub: StubUpstream;
  before(async () => {
    stub = await StubUpstream.start({ name: 'alpha' });
  });
  after(() => stub.close());
  beforeEach(() => stub.reset());

  test('url is the /v1 base URL on loopback', () => {
    assert.match(stub.url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    assert.equal(stub.name, 'alpha');
  });

  test('GET /v1/models lists the stub model', async () => {
    const res = await fetch(`${stub.url}/models`);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.object, 'list');
    assert.deepEqual(body.data.map((m: { id: string; owned_by: string }) => [m.id, m.owned_by]), [['stub-model', 'vllm']]);
  });

  test('non-streaming chat completion has the OpenAI shape and word-count usage', async () => {
    const res = await chat(stub, {
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'one two three' }, { type: 'image_url', image_url: { url: 'x' } }] },
      ],
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const body = await res.json();
    assert.match(body.id, /^chatcmpl-[0-9a-f]{32}$/);
    assert.equal(body.object, 'chat.completion');
    assert.equal(typeof body.created, 'number');
    assert.equal(body.model, 'my-model');
    assert.deepEqual(body.choices, [{
      index: 0, message: { role: 'assistant', content: 'This is the stub answer from alpha.' }, logprobs: null, finish_reason: 'stop',
    }]);
    assert.deepEqual(body.usage, { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 });
    assert.equal(stub.requests.length, 1);
    assert.deepEqual(
      { method: stub.requests[0]!.method, path: stub.requests[0]!.path, model: stub.requests[0]!.body.model, aborted: stub.requests[0]!.aborted },
      { method: 'POST', path: '/v1/chat/completions', model: 'my-model', aborted: false },
    );
  });

  test('max_tokens cuts the reply to that many words', async () => {
    const body = await (await chat(stub, { max_tokens: 3 })).json();
    assert.equal(body.choices[0].message.content, 'This is the');
    assert.equal(body.choices[0].finish_reason, 'length');
    assert.equal(body.usage.completion_tokens, 3);
  });

  test('streaming chat: role chunk, one chunk per word, stop chunk, [DONE]; no usage unless asked', async () => {
    const res = await chat(stub, { stream: true });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const data = sseData(await res.text());
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'my-model' && c.id === chunks[0].id));
    assert.ok(chunks.every((c) => !('usage' in c)), 'no usage key without stream_options.include_usage');
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    const words = chunks.slice(1, -1).map((c) => c.choices[0].delta.content);
    assert.deepEqual(words, ['This ', 'is ', 'the ', 'stub ', 'answer ', 'from ', 'alpha.']);
    assert.ok(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null));
    assert.deepEqual(chunks.at(-1).choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]);
  });

  test('streaming chat with include_usage: usage null on chunks, then a usage-only chunk before [DONE]', async () => {
    const res = await chat(stub, { stream: true, stream_options: { include_usage: true } });
    const data = sseData(await res.text());
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, { prompt_tokens: 2, completion_tokens: 7, total_tokens: 9 });
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
  });

  test('legacy completions, plain and streamed', async () => {
    const body = await (await post(`${stub.url}/completions`, { model: 'm', prompt: 'say something' })).json();
    assert.equal(body.object, 'text_completion');
    assert.match(body.id, /^cmpl-/);
    assert.equal(body.choices[0].text, 'This is the stub answer from alpha.');
    assert.deepEqual(body.usage, { prompt_tokens: 2, completion_tokens: 7, total_tokens: 9 });

    const data = sseData(await (await post(`${stub.url}/completions`, { model: 'm', prompt: 'x', stream: true })).text());
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.ok(chunks.every((c) => c.object === 'text_completion'));
    assert.equal(chunks.map((c) => c.choices[0].text).join(''), 'This is the stub answer from alpha.');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  });

  test('embeddings are deterministic 8-dim vectors, float or base64 float32', async () => {
    const input = ['hello world', 'other text', 'hello world'];
    const floats = await (await post(`${stub.url}/embeddings`, { model: 'e', input })).json();
    assert.equal(floats.object, 'list');
    assert.deepEqual(floats.usage, { prompt_tokens: 6, total_tokens: 6, completion_tokens: 0 });
    const vectors: number[][] = floats.data.map((d: { embedding: number[] }) => d.embedding);
    assert.deepEqual(floats.data.map((d: { index: number }) => d.index), [0, 1, 2]);
    assert.ok(vectors.every((v) => v.length === 8));
    assert.deepEqual(vectors[0], vectors[2]);
    assert.notDeepEqual(vectors[0], vectors[1]);

    const b64 = await (await post(`${stub.url}/embeddings`, { model: 'e', input: 'hello world', encoding_format: 'base64' })).json();
    const buf = Buffer.from(b64.data[0].embedding, 'base64');
    assert.equal(buf.length, 32);
    assert.deepEqual(Array.from({ length: 8 }, (_, i) => buf.readFloatLE(i * 4)), vectors[0]);
  });

  test('malformed JSON gets a 400 in vLLM error shape', async () => {
    const res = await post(`${stub.url}/chat/completions`, '{"model": ');
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.deepEqual({ ...body, message: typeof body.message }, { object: 'error', message: 'string', type: 'BadRequestError', param: null, code: 400 });
    assert.equal(stub.requests[0]!.body, '{"model": ');
  });

  test('plan() applies in order, one per request, then the default resumes', async () => {
    stub.setDefault({ content: 'the default' });
    stub.plan({ status: 500 }, { content: 'second planned' });
    const statuses: number[] = [];
    const contents: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await chat(stub);
      statuses.push(res.status);
      const body = await res.json();
      contents.push(res.ok ? body.choices[0].message.content : body.message);
    }
    assert.deepEqual(statuses, [500, 200, 200, 200]);
    assert.deepEqual(contents, ['Stub error 500', 'second planned', 'the default', 'the default']);
  });

  test('status behaviour sends headers and the default or a custom error body', async () => {
    stub.plan({ status: 429, headers: { 'Retry-After': '1' } }, { status: 503, errorBody: { error: { message: 'overloaded' } } });
    const first = await chat(stub);
    assert.equal(first.status, 429);
    assert.equal(first.headers.get('retry-after'), '1');
    assert.deepEqual(await first.json(), { object: 'error', message: 'Stub error 429', type: 'BadRequestError', param: null, code: 429 });
    const second = await chat(stub);
    assert.equal(second.status, 503);
    assert.deepEqual(await second.json(), { error: { message: 'overloaded' } });
  });

  test('reset before headers fails the request; mid-stream fails the body after the first chunk', async () => {
    stub.plan({ reset: 'before-headers' }, { reset: 'mid-stream' });
    await assert.rejects(chat(stub), TypeError);
    const res = await chat(stub, { stream: true });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /"role":"assistant"/);
    await assert.rejects(async () => {
      for (;;) if ((await reader.read()).done) break;
    });
    await stub.waitForRequests(2);
    assert.deepEqual(stub.requests.map((r) => r.aborted), [false, false], 'server resets are not client aborts');
  });

  test('delayMs holds the answer back', async () => {
    stub.plan({ delayMs: 60 });
    const started = performance.now();
    const res = await chat(stub);
    assert.equal(res.status, 200);
    assert.ok(performance.now() - started >= 55, 'answered no earlier than the delay');
  });

  test('waitForAbort resolves when the client aborts a stalled request', async () => {
    stub.plan({ stall: 'before-headers' });
    const controller = new AbortController();
    const pending = chat(stub, {}, { signal: controller.signal });
    await stub.waitForRequests(1);
    assert.equal(stub.inFlight(), 1);
    controller.abort();
    await assert.rejects(pending, { name: 'AbortError' });
    const aborted = await stub.waitForAbort();
    assert.equal(aborted, stub.requests[0]);
    assert.equal(aborted.aborted, true);
    assert.equal(stub.inFlight(), 0);
  });

  test('waitForAbort sees a client leaving a stream stalled mid-way', async () => {
    stub.plan({ stall: 'mid-stream' });
    const controller = new AbortController();
    const res = await chat(stub, { stream: true }, { signal: controller.signal });
    const reader = res.body!.getReader();
    assert.match(new TextDecoder().decode((await reader.read()).value), /"role":"assistant"/);
    controller.abort();
    assert.equal((await stub.waitForAbort()).aborted, true);
  });

  test('waitForAbort rejects on timeout when nobody aborts', async () => {
    await assert.rejects(stub.waitForAbort(20), /timed out after 20ms waiting for a client abort/);
  });

  test('API key is enforced when configured', async () => {
    const secured = await StubUpstream.start({ apiKey: 'sk-test' });
    try {
      const denied = await chat(secured);
      assert.equal(denied.status, 401);
      assert.equal((await denied.json()).error.message, 'Unauthorized');
      const allowed = await chat(secured, {}, { headers: { ...json, authorization: 'Bearer sk-test' } });
      assert.equal(allowed.status, 200);
      assert.match((await allowed.json()).choices[0].message.content, /^This is the stub answer from stub-\d+\.$/);
    } finally {
      await secured.close();
    }
  });

  test('close() completes while a request is stalled, and the client sees the connection drop', { timeout: 2_000 }, async () => {
    const other = await StubUpstream.start({ name: 'beta' });
    other.plan({ stall: 'before-headers' });
    const pending = chat(other);
    await other.waitForRequests(1);
    await other.close();
    await assert.rejects(pending, TypeError);
    assert.equal(other.requests[0]!.aborted, false, 'closing is not a client abort');
    await assert.rejects(chat(other), TypeError); // no longer listening
  });

  test('reset() clears requests, plan and default', async () => {
    stub.setDefault({ content: 'custom' });
    stub.plan({ status: 500 });
    await chat(stub);
    stub.reset();
    assert.equal(stub.requests.length, 0);
    const body = await (await chat(stub)).json();
    assert.equal(body.choices[0].message.content, 'This is the stub answer from alpha.');
  });
});
