/**
 * Model-server faults injected for real, beyond the ones test/chat.test.ts covers: a refused
 * port, a replica that stalls before its headers (retried on a healthy one), streams that break
 * or go silent (an error object last, never a silent `[DONE]`-less close). After every fault no
 * upstream request is left open: Cairn's per-replica in-flight count and the stubs' open
 * responses are back to 0.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startCairn, stubModel, type TestCairn } from './helpers/harness.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';
import { freePort, until } from './helpers/wait.ts';

/** The SSE events of a raw streamed chat completion, as parsed JSON (or the literal `[DONE]`). */
async function streamEvents(cairn: TestCairn, model: string): Promise<unknown[]> {
  const response = await fetch(`${cairn.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${cairn.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], stream: true }),
  });
  assert.equal(response.status, 200);
  const text = await response.text();
  return text
    .trim()
    .split('\n\n')
    .map((event) => {
      assert.match(event, /^data: /);
      const payload = event.slice('data: '.length);
      return payload === '[DONE]' ? payload : JSON.parse(payload);
    });
}

describe('upstream faults', () => {
  let healthy: StubUpstream;
  let flaky: StubUpstream;
  let backup: StubUpstream;
  let cairn: TestCairn;
  let client: OpenAI;
  let refusedUrl: string;

  before(async () => {
    [healthy, flaky, backup] = await Promise.all([
      StubUpstream.start({ name: 'healthy' }),
      StubUpstream.start({ name: 'flaky' }),
      StubUpstream.start({ name: 'backup' }),
    ]);
    refusedUrl = `http://127.0.0.1:${await freePort()}/v1`;
    const timeouts = { first_byte_ms: 300, idle_ms: 300 };
    cairn = await startCairn({
      modelConfig: {
        models: [
          stubModel('half-down', [refusedUrl, healthy.url]),
          stubModel('all-down', [refusedUrl]),
          // Two replicas, so a stalled one is retried on the other; a fallback for when both stall.
          stubModel('pair', [flaky.url, healthy.url], { timeouts, fallbacks: ['backup'] }),
          stubModel('solo', [flaky.url], { timeouts }),
          stubModel('backup', [backup.url]),
        ],
      },
    });
    client = cairn.client();
  });

  after(async () => {
    await cairn.stop();
    await Promise.all([healthy, flaky, backup].map((stub) => stub.close()));
  });

  beforeEach(() => {
    for (const stub of [healthy, flaky, backup]) stub.reset();
  });

  afterEach(async () => {
    // No leaked upstream requests: every attempt released its slot and closed its response.
    const replicas = cairn.services.modelRegistry.routes().flatMap((route) => route.replicas);
    await until('every upstream request to finish', () =>
      replicas.every((replica) => replica.inFlight === 0) && [healthy, flaky, backup].every((stub) => stub.inFlight() === 0),
      5_000,
    );
  });

  it('retries a refused replica on a healthy one', async () => {
    for (let i = 0; i < 4; i += 1) {
      const answer = await client.chat.completions.create({ model: 'half-down', messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(answer.choices[0]!.message.content, 'This is the stub answer from healthy.');
    }
    assert.equal(healthy.requests.length, 4);
  });

  it('answers 502 in the OpenAI envelope when every replica refuses, and keeps serving', async () => {
    const response = await fetch(`${cairn.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cairn.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'all-down', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(response.status, 502);
    const body = (await response.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'upstream_error');
    assert.match(body.error.message, /ECONNREFUSED/);
    assert.doesNotMatch(body.error.message, /127\.0\.0\.1/, 'no internal address in client errors');
    const next = await client.chat.completions.create({ model: 'half-down', messages: [{ role: 'user', content: 'hi' }] });
    assert.match(next.choices[0]!.message.content ?? '', /healthy/);
  });

  it('retries a replica that stalls before its headers on a healthy one, and aborts the stalled request', async () => {
    flaky.setDefault({ stall: 'before-headers' });
    for (let i = 0; i < 2; i += 1) {
      const { data, response } = await client.chat.completions
        .create({ model: 'pair', messages: [{ role: 'user', content: 'hi' }] })
        .withResponse();
      assert.equal(data.choices[0]!.message.content, 'This is the stub answer from healthy.');
      assert.equal(response.headers.get('x-cairn-model'), 'pair');
    }
    assert.ok(flaky.requests.length >= 1, 'the stalled replica was tried');
    assert.equal(healthy.requests.length, 2);
    assert.equal((await flaky.waitForAbort()).aborted, true, 'the stalled upstream request was closed');
  });

  it('falls back to another model when every replica stalls, without asking a stalled one twice', async () => {
    flaky.setDefault({ stall: 'before-headers' });
    healthy.setDefault({ stall: 'before-headers' });
    const { data, response } = await client.chat.completions
      .create({ model: 'pair', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(response.headers.get('x-cairn-model'), 'backup');
    assert.equal(data.choices[0]!.message.content, 'This is the stub answer from backup.');
    assert.equal(flaky.requests.length, 1);
    assert.equal(healthy.requests.length, 1);
  });

  it('answers 504 when the only replica stalls, after one attempt', async () => {
    flaky.setDefault({ stall: 'before-headers' });
    const started = performance.now();
    await assert.rejects(
      client.chat.completions.create({ model: 'solo', messages: [{ role: 'user', content: 'hi' }] }),
      (error: unknown) => error instanceof OpenAI.InternalServerError && error.status === 504 && error.code === 'upstream_timeout',
    );
    assert.ok(performance.now() - started < 2_000, 'one first-byte timeout, not several');
    assert.equal(flaky.requests.length, 1);
  });

  it('ends a stream reset mid-way with an error object and no [DONE]', async () => {
    flaky.plan({ reset: 'mid-stream' });
    const events = await streamEvents(cairn, 'solo');
    assert.ok(events.length >= 2, 'the first chunk arrived before the error');
    assert.equal((events[0] as { object: string }).object, 'chat.completion.chunk');
    assert.ok(!events.includes('[DONE]'));
    const last = events.at(-1) as { error: { code: string; message: string } };
    assert.equal(last.error.code, 'upstream_error');
    assert.match(last.error.message, /interrupted/);
    assert.equal(flaky.requests.length + healthy.requests.length + backup.requests.length, 1, 'a started stream is never retried');
  });

  it('ends a stream that stalls mid-way with a timeout error object and closes the upstream request', async () => {
    flaky.plan({ stall: 'mid-stream' });
    const events = await streamEvents(cairn, 'solo');
    assert.ok(!events.includes('[DONE]'));
    const last = events.at(-1) as { error: { code: string; message: string } };
    assert.equal(last.error.code, 'upstream_timeout');
    assert.match(last.error.message, /stopped sending/);
    assert.equal((await flaky.waitForAbort()).aborted, true, 'Cairn closed the silent upstream stream');
  });

  it('releases every attempt of a request that failed over 500s and 429s', async () => {
    flaky.plan({ status: 500 }, { status: 429, headers: { 'retry-after': '0' } });
    healthy.plan({ status: 503 }, { status: 429, headers: { 'retry-after': '0' } });
    const answer = await client.chat.completions.create({ model: 'pair', messages: [{ role: 'user', content: 'hi' }] });
    assert.match(answer.choices[0]!.message.content ?? '', /stub answer/);
  });
});
