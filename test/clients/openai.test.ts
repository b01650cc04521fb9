/**
 * Client matrix: the official `openai` SDK against a running Cairn — chat (plain, stream, tools,
 * `parse` with zod), embeddings, files, vector stores with search, file content and attribute updates,
 * pagination, grounded answers.
 * The `// recipe:` block is the code docs/clients.md shows (recipes.test.ts keeps them identical).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import { HANDBOOK, REFUND_SENTENCE, startClientFixture, type ClientFixture } from './fixture.ts';

describe('client matrix: openai', () => {
  let fx: ClientFixture;
  let client: OpenAI;
  before(async () => {
    fx = await startClientFixture();
    client = new OpenAI({ baseURL: fx.baseURL, apiKey: fx.apiKey, maxRetries: 0 });
  });
  after(() => fx.stop());

  it('chats plain and streamed', async () => {
    fx.upstream.plan({ content: 'Plain answer.' }, { content: 'Streamed answer here.' });
    const plain = await client.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(plain.choices[0]!.message.content, 'Plain answer.');
    const stream = await client.chat.completions.create({ model: 'llama', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    assert.equal(text, 'Streamed answer here.');
  });

  it('forwards tools and returns the tool calls', async () => {
    fx.upstream.plan({ toolCalls: [{ name: 'get_weather', arguments: '{"city":"Rotterdam"}' }] });
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
    ];
    const answer = await client.chat.completions.create({ model: 'llama', tools, messages: [{ role: 'user', content: 'Weather in Rotterdam?' }] });
    assert.equal(answer.choices[0]!.finish_reason, 'tool_calls');
    const call = answer.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    assert.deepEqual([call.function.name, JSON.parse(call.function.arguments)], ['get_weather', { city: 'Rotterdam' }]);
    assert.deepEqual(fx.upstream.requests.at(-1)!.body.tools, tools, 'the tools reached the model');
  });

  it('parses structured output with chat.completions.parse and zod', async () => {
    fx.upstream.plan({ content: '{"city":"Rotterdam","weekday":"Tuesday"}' });
    const Shipping = z.object({ city: z.string(), weekday: z.string() });
    const parsed = await client.chat.completions.parse({
      model: 'llama',
      messages: [{ role: 'user', content: 'Where and when do parcels ship?' }],
      response_format: zodResponseFormat(Shipping, 'shipping'),
    });
    assert.deepEqual(parsed.choices[0]!.message.parsed, { city: 'Rotterdam', weekday: 'Tuesday' });
  });

  it('embeds with the local model', async () => {
    const result = await client.embeddings.create({ model: fx.embeddingModel, input: ['refunds', 'parcels'] });
    assert.equal(result.data.length, 2);
    assert.equal(result.data[0]!.embedding.length, fx.dimensions);
    assert.ok(result.usage.prompt_tokens > 0);
  });

  it('uploads files, reads them back and pages through lists', async () => {
    const ids: string[] = [];
    for (const name of ['a.txt', 'b.txt', 'c.txt']) {
      ids.push((await client.files.create({ file: await toFile(Buffer.from(`file ${name}`), name), purpose: 'assistants' })).id);
    }
    assert.equal(await (await client.files.content(ids[1]!)).text(), 'file b.txt');
    const seen: string[] = [];
    for await (const file of client.files.list({ limit: 1, order: 'asc' })) seen.push(file.id);
    assert.deepEqual(seen.filter((id) => ids.includes(id)), ids, 'auto-pagination visits every page in order');
    const firstPage = await client.files.list({ limit: 1 });
    assert.equal(firstPage.data.length, 1);
    assert.ok(firstPage.hasNextPage());
  });

  it('creates vector stores, attaches files and searches them', async () => {
    const store = await client.vectorStores.create({ name: 'matrix' });
    const file = await client.files.create({ file: await toFile(Buffer.from(HANDBOOK), 'handbook.txt'), purpose: 'assistants' });
    const attached = await client.vectorStores.files.createAndPoll(store.id, { file_id: file.id, attributes: { dept: 'support' } });
    assert.equal(attached.status, 'completed');
    const results = await client.vectorStores.search(store.id, { query: 'which city do parcels ship from', max_num_results: 3 });
    assert.equal(results.data[0]!.file_id, file.id);
    assert.match(results.data[0]!.content.map((part) => part.text).join(' '), /Rotterdam/);
    const filtered = await client.vectorStores.search(store.id, { query: 'parcels', filters: { type: 'eq', key: 'dept', value: 'legal' } });
    assert.equal(filtered.data.length, 0, 'attribute filters apply');
    const listed = await client.vectorStores.files.list(store.id);
    assert.deepEqual(listed.data.map((entry) => entry.id), [file.id]);
  });

  it('reads a vector-store file\'s parsed content and updates its attributes, which filters see at once', async () => {
    const store = await client.vectorStores.create({ name: 'matrix-files' });
    const file = await client.files.create({ file: await toFile(Buffer.from(HANDBOOK), 'handbook.txt'), purpose: 'assistants' });
    await client.vectorStores.files.createAndPoll(store.id, { file_id: file.id, attributes: { dept: 'support' } });
    const parts = [];
    for await (const part of client.vectorStores.files.content(file.id, { vector_store_id: store.id })) parts.push(part);
    assert.ok(parts.every((part) => part.type === 'text'));
    assert.match(parts.map((part) => part.text).join(' '), /Refunds are issued within 30 days.*Rotterdam/s);
    const updated = await client.vectorStores.files.update(file.id, { vector_store_id: store.id, attributes: { dept: 'legal' } });
    assert.deepEqual(updated.attributes, { dept: 'legal' });
    const legal = await client.vectorStores.search(store.id, { query: 'parcels', filters: { type: 'eq', key: 'dept', value: 'legal' } });
    assert.deepEqual(legal.data.map((result) => result.file_id), [file.id], 'the new attribute is searchable without re-ingestion');
  });

  it('returns grounded answers with citations and url_citation annotations', async () => {
    const { baseURL, apiKey, kbId } = fx;
    // recipe: openai
    const client = new OpenAI({ baseURL, apiKey });
    const completion = await client.chat.completions.create({
      model: 'extractive', // or any chat model Cairn routes to
      messages: [{ role: 'user', content: 'How many days do refunds take?' }],
      // @ts-expect-error Cairn's extension: the SDK sends unknown fields as they are
      knowledge_bases: [kbId],
    });
    const message = completion.choices[0]!.message;
    const citations = (completion as unknown as { citations: Array<{ index: number; filename: string; text: string }> }).citations;
    const sources = (message.annotations ?? []).map(({ url_citation: cited }) => ({
      marker: message.content!.slice(cited.start_index, cited.end_index), // "[1]"
      title: cited.title, // the filename
      url: cited.url, // GET it (with the key) for the file's bytes
    }));
    // end recipe
    assert.match(message.content!, REFUND_SENTENCE);
    assert.equal(citations[0]!.filename, 'handbook.txt');
    assert.deepEqual(sources, [{ marker: '[1]', title: 'handbook.txt', url: `${fx.baseURL}/files/${fx.fileId}/content` }]);
  });
});
