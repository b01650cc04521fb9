/**
 * Client matrix: curl-shaped HTTP (fetch, JSON bodies, multipart uploads, SSE read by hand), and
 * a stream consumer that skips the first chunk as LlamaIndex.TS does. The `// recipe:` block is
 * the code docs/clients.md shows (recipes.test.ts keeps them identical).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../helpers/wait.ts';
import { HANDBOOK, QUESTION, REFUND_SENTENCE, startClientFixture, type ClientFixture } from './fixture.ts';

interface Chunk {
  object: string;
  citations?: Array<{ index: number; filename: string }>;
  choices: Array<{ delta: { content?: string; annotations?: Array<{ type: string; url_citation: { title: string } }> }; finish_reason: string | null }>;
}

/** The `data:` payloads of an SSE body, without the final [DONE]. */
function sseChunks(body: string): Chunk[] {
  const events = body.trim().split('\n\n').map((event) => event.replace(/^data: /, ''));
  assert.equal(events.at(-1), '[DONE]');
  return events.slice(0, -1).map((event) => JSON.parse(event) as Chunk);
}

describe('client matrix: raw HTTP', () => {
  let fx: ClientFixture;
  let auth: { authorization: string };
  before(async () => {
    fx = await startClientFixture();
    auth = { authorization: `Bearer ${fx.apiKey}` };
  });
  after(() => fx.stop());

  it('answers a grounded question as JSON', async () => {
    const { baseURL, apiKey, kbId } = fx;
    // recipe: http
    // curl "$BASE_URL/chat/completions" -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
    //   -d '{"model":"extractive","messages":[{"role":"user","content":"How many days do refunds take?"}],"knowledge_bases":["kb_…"]}'
    const response = await fetch(`${baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'extractive',
        messages: [{ role: 'user', content: 'How many days do refunds take?' }],
        knowledge_bases: [kbId],
      }),
    });
    const { choices, citations } = await response.json();
    // end recipe
    assert.equal(response.status, 200);
    assert.match(choices[0].message.content, REFUND_SENTENCE);
    assert.equal(citations[0].filename, 'handbook.txt');
    assert.equal(choices[0].message.annotations[0].type, 'url_citation');
  });

  it('streams citations on the finish chunk too, so a consumer that skips the first chunk still gets them', async () => {
    const response = await fetch(`${fx.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'extractive', stream: true, messages: [{ role: 'user', content: QUESTION }], knowledge_bases: [fx.kbId] }),
    });
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const chunks = sseChunks(await response.text());
    // LlamaIndex.TS's OpenAI adapter drops the first chunk ({role, content: ''}) of a stream.
    const seenByLlamaIndex = chunks.slice(1);
    const finish = seenByLlamaIndex.find((chunk) => chunk.choices[0]?.finish_reason);
    assert.ok(finish, 'a finish chunk');
    assert.equal(finish.citations?.[0]?.filename, 'handbook.txt');
    assert.deepEqual(finish.citations, chunks[0]!.citations);
    assert.deepEqual(finish.choices[0]!.delta.annotations!.map((annotation) => annotation.url_citation.title), ['handbook.txt']);
    assert.match(seenByLlamaIndex.map((chunk) => chunk.choices[0]?.delta.content ?? '').join(''), REFUND_SENTENCE);
  });

  it('uploads a file as multipart, attaches it, and searches', async () => {
    const form = new FormData();
    form.append('purpose', 'assistants');
    form.append('file', new Blob([HANDBOOK], { type: 'text/plain' }), 'upload.txt');
    const file = await (await fetch(`${fx.baseURL}/files`, { method: 'POST', headers: auth, body: form })).json();
    assert.equal(file.filename, 'upload.txt');
    assert.equal(file.bytes, Buffer.byteLength(HANDBOOK));
    const json = { ...auth, 'content-type': 'application/json' };
    const store = await (await fetch(`${fx.baseURL}/vector_stores`, { method: 'POST', headers: json, body: JSON.stringify({ name: 'raw', file_ids: [file.id] }) })).json();
    await until('the attached file is ingested', async () => {
      const attached = await (await fetch(`${fx.baseURL}/vector_stores/${store.id}/files/${file.id}`, { headers: auth })).json();
      assert.notEqual(attached.status, 'failed');
      return attached.status === 'completed';
    });
    const search = await (await fetch(`${fx.baseURL}/vector_stores/${store.id}/search`, { method: 'POST', headers: json, body: JSON.stringify({ query: 'Rotterdam' }) })).json();
    assert.equal(search.data[0].filename, 'upload.txt');
  });

  it('answers bad input with a 4xx in the OpenAI error envelope', async () => {
    const response = await fetch(`${fx.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama', messages: [] }),
    });
    assert.equal(response.status, 400);
    const { error } = await response.json();
    assert.equal(error.type, 'invalid_request_error');
    assert.equal(error.param, 'messages');
  });
});
