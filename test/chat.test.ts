/** End-to-end: the official openai SDK against Cairn against vLLM-like stub upstreams. */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startCairn, stubModel, type TestCairn } from './helpers/harness.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';

describe('chat completions through the openai SDK', () => {
  let primaryA: StubUpstream;
  let primaryB: StubUpstream;
  let backup: StubUpstream;
  let slow: StubUpstream;
  let cairn: TestCairn;
  let client: OpenAI;

  before(async () => {
    [primaryA, primaryB, backup, slow] = await Promise.all([
      StubUpstream.start({ name: 'replica-a' }),
      StubUpstream.start({ name: 'replica-b' }),
      StubUpstream.start({ name: 'backup' }),
      StubUpstream.start({ name: 'slow', chunkDelayMs: 5 }),
    ]);
    cairn = await startCairn({
      modelConfig: {
        models: [
          stubModel('llama-3.1-8b', [primaryA.url, primaryB.url], { aliases: ['gpt-4o-mini'], fallbacks: ['llama-3.3-70b'] }),
          stubModel('llama-3.3-70b', [backup.url]),
          stubModel('slow-model', [slow.url], { timeouts: { first_byte_ms: 300, idle_ms: 300 } }),
        ],
      },
    });
    client = cairn.client();
  });

  after(async () => {
    await cairn.stop();
    await Promise.all([primaryA, primaryB, backup, slow].map((stub) => stub.close()));
  });

  beforeEach(() => {
    for (const stub of [primaryA, primaryB, backup, slow]) stub.reset();
  });

  it('answers a plain chat completion and names the route in x-cairn-model', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'Say hello' }] })
      .withResponse();
    assert.match(data.choices[0]!.message.content ?? '', /^This is the stub answer from replica-[ab]\.$/);
    assert.equal(data.model, 'llama-3.1-8b');
    assert.equal(response.headers.get('x-cairn-model'), 'llama-3.1-8b');
    assert.match(response.headers.get('x-request-id') ?? '', /^req_/);
    assert.ok(Number(response.headers.get('openai-processing-ms')) >= 0);
    assert.equal(data.usage?.prompt_tokens, 2);
  });

  it('streams chunks in OpenAI format ending with [DONE], with usage only when asked', async () => {
    const stream = await client.chat.completions.create({
      model: 'llama-3.1-8b',
      messages: [{ role: 'user', content: 'Say hello' }],
      stream: true,
    });
    let text = '';
    let usageChunks = 0;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      assert.equal(chunk.model, 'llama-3.1-8b');
      if (chunk.usage) usageChunks += 1;
      text += chunk.choices[0]?.delta.content ?? '';
    }
    assert.match(text, /^This is the stub answer from replica-[ab]\.\s*$/);
    assert.equal(usageChunks, 0, 'the client did not ask for usage');
    // Cairn asked the upstream for usage anyway, to account for the stream.
    const forwarded = [...primaryA.requests, ...primaryB.requests][0]!;
    assert.equal(forwarded.body.stream_options.include_usage, true);

    const withUsage = await client.chat.completions.create({
      model: 'llama-3.1-8b',
      messages: [{ role: 'user', content: 'Say hello' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let last: OpenAI.ChatCompletionChunk | undefined;
    for await (const chunk of withUsage) last = chunk;
    assert.equal(last?.usage?.prompt_tokens, 2);
    assert.deepEqual(last?.choices, []);
  });

  it('relays the raw SSE stream with event-stream headers and data: [DONE] last', async () => {
    const response = await fetch(`${cairn.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cairn.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = (await response.text()).trim().split('\n\n');
    assert.equal(events.at(-1), 'data: [DONE]');
    assert.ok(events.slice(0, -1).every((event) => event.startsWith('data: {')));
  });

  it('forwards unknown fields untouched and replaces the model with the upstream name', async () => {
    await client.chat.completions.create({
      model: 'llama-3.1-8b',
      messages: [{ role: 'user', content: 'hi' }],
      // vLLM sampling extensions the SDK does not know about.
      ...({ top_k: 5, min_p: 0.1, repetition_penalty: 1.2, guided_json: { type: 'object' } } as object),
    });
    const forwarded = [...primaryA.requests, ...primaryB.requests][0]!;
    assert.equal(forwarded.body.top_k, 5);
    assert.equal(forwarded.body.min_p, 0.1);
    assert.equal(forwarded.body.repetition_penalty, 1.2);
    assert.deepEqual(forwarded.body.guided_json, { type: 'object' });
    assert.equal(forwarded.body.model, 'upstream-llama-3.1-8b');
    assert.equal(forwarded.headers.authorization, undefined, "the caller's Cairn key never reaches the upstream");
  });

  it('maps an alias to its model', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(response.headers.get('x-cairn-model'), 'llama-3.1-8b');
    assert.equal(data.model, 'llama-3.1-8b');
  });

  it('spreads sequential requests evenly across replicas', async () => {
    for (let i = 0; i < 10; i += 1) {
      await client.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] });
    }
    assert.equal(primaryA.requests.length, 5);
    assert.equal(primaryB.requests.length, 5);
  });

  it('sends to the replica with the fewest requests in flight', async () => {
    const held = new AbortController();
    primaryA.plan({ stall: 'before-headers' });
    primaryB.plan({ stall: 'before-headers' });
    const first = client.chat.completions.create(
      { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'first' }] },
      { signal: held.signal },
    );
    first.catch(() => undefined);
    await Promise.race([primaryA.waitForRequests(1), primaryB.waitForRequests(1)]);
    const busy = primaryA.requests.length === 1 ? primaryA : primaryB;
    const idle = busy === primaryA ? primaryB : primaryA;
    idle.reset();
    for (let i = 0; i < 3; i += 1) {
      await client.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'next' }] });
    }
    assert.equal(idle.requests.length, 3, 'every request while one is in flight goes to the idle replica');
    assert.equal(busy.requests.length, 1);
    held.abort();
    await busy.waitForAbort();
  });

  it('retries a failing replica, then falls back to the next model', async () => {
    primaryA.setDefault({ status: 503 });
    primaryB.setDefault({ status: 500 });
    const { data, response } = await client.chat.completions
      .create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(response.headers.get('x-cairn-model'), 'llama-3.3-70b');
    assert.equal(data.model, 'llama-3.3-70b');
    assert.equal(data.choices[0]!.message.content, 'This is the stub answer from backup.');
    // 1 attempt + 2 retries, alternating replicas.
    assert.equal(primaryA.requests.length + primaryB.requests.length, 3);
    assert.ok(primaryA.requests.length >= 1 && primaryB.requests.length >= 1);
    assert.equal(backup.requests[0]!.body.model, 'upstream-llama-3.3-70b');
  });

  it('retries after a connection reset and honours retry-after on 429', async () => {
    primaryA.plan({ reset: 'before-headers' });
    primaryB.plan({ reset: 'before-headers' });
    const reset = await client.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] });
    assert.match(reset.choices[0]!.message.content ?? '', /replica-[ab]/);
    assert.equal(backup.requests.length, 0);

    for (const stub of [primaryA, primaryB]) stub.reset();
    primaryA.plan({ status: 429, headers: { 'retry-after': '0.2' } });
    primaryB.plan({ status: 429, headers: { 'retry-after': '0.2' } });
    const started = performance.now();
    await client.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] });
    assert.ok(performance.now() - started >= 190, 'waited as long as retry-after asked');
    assert.equal(primaryA.requests.length + primaryB.requests.length, 3);
  });

  it('never retries once a stream has started, and ends it with an error event', async () => {
    primaryA.plan({ reset: 'mid-stream' });
    primaryB.plan({ reset: 'mid-stream' });
    const stream = await client.chat.completions.create({
      model: 'llama-3.1-8b',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    await assert.rejects(async () => {
      for await (const _chunk of stream) {
        /* drain */
      }
    }, /interrupted/);
    assert.equal(primaryA.requests.length + primaryB.requests.length, 1);
    assert.equal(backup.requests.length, 0);
  });

  it('aborts the upstream request when the client disconnects', async () => {
    slow.setDefault({ stall: 'before-headers' });
    const abort = new AbortController();
    const pending = client.chat.completions.create(
      { model: 'slow-model', messages: [{ role: 'user', content: 'hi' }] },
      { signal: abort.signal, timeout: 60_000 },
    );
    pending.catch(() => undefined);
    await slow.waitForRequests(1);
    abort.abort();
    const aborted = await slow.waitForAbort();
    assert.equal(aborted.aborted, true);
    await assert.rejects(pending, OpenAI.APIUserAbortError);
  });

  it('aborts the upstream stream when a streaming client disconnects mid-stream', async () => {
    slow.setDefault({ stall: 'mid-stream' });
    const abort = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'slow-model', messages: [{ role: 'user', content: 'hi' }], stream: true },
      { signal: abort.signal },
    );
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    abort.abort();
    assert.equal((await slow.waitForAbort()).aborted, true);
  });

  it('answers 504 when the upstream does not start answering in time', async () => {
    slow.setDefault({ stall: 'before-headers' });
    await assert.rejects(
      client.chat.completions.create({ model: 'slow-model', messages: [{ role: 'user', content: 'hi' }] }),
      (error: unknown) => error instanceof OpenAI.InternalServerError && error.status === 504,
    );
    assert.equal(slow.requests.length, 1, 'a timed-out request is not repeated');
  });

  it('ends a stream that goes silent with a timeout error event', async () => {
    slow.setDefault({ stall: 'mid-stream' });
    const stream = await client.chat.completions.create({
      model: 'slow-model',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    await assert.rejects(async () => {
      for await (const _chunk of stream) {
        /* drain */
      }
    }, /stopped sending/);
  });

  it('normalises vLLM error bodies into the OpenAI envelope', async () => {
    const vllmError = { object: 'error', message: 'This model\'s maximum context length is 8192 tokens', type: 'BadRequestError', param: null, code: 400 };
    primaryA.plan({ status: 400, errorBody: vllmError });
    primaryB.plan({ status: 400, errorBody: vllmError });
    const error = await client.chat.completions
      .create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] })
      .catch((caught: unknown) => caught);
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.match(error.message, /maximum context length/);
    assert.equal(error.type, 'invalid_request_error');
    assert.equal(primaryA.requests.length + primaryB.requests.length, 1, 'client errors are not retried');
  });

  it('raises each of the SDK error classes', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }], temperature: 7 }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'temperature',
    );
    await assert.rejects(
      cairn.client({ apiKey: 'sk-cairn-not-a-real-key' }).chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }),
      (error: unknown) => error instanceof OpenAI.AuthenticationError && error.code === 'invalid_api_key',
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
      (error: unknown) => error instanceof OpenAI.NotFoundError && error.code === 'model_not_found',
    );
    for (const stub of [primaryA, primaryB, backup]) stub.setDefault({ status: 429, headers: { 'retry-after': '3600' } });
    await assert.rejects(
      client.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }),
      (error: unknown) =>
        error instanceof OpenAI.RateLimitError && error.headers.get('retry-after') === '3600',
    );
    for (const stub of [primaryA, primaryB, backup]) stub.setDefault({ status: 500 });
    await assert.rejects(
      client.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }),
      (error: unknown) => error instanceof OpenAI.InternalServerError && error.status === 502,
    );
    const closed = new OpenAI({ baseURL: 'http://127.0.0.1:9/v1', apiKey: cairn.key, maxRetries: 0 });
    await assert.rejects(closed.models.list(), OpenAI.APIConnectionError);
  });
});
