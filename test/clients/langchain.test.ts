/**
 * Client matrix: LangChain.js (`@langchain/openai`) against a running Cairn — ChatOpenAI invoke,
 * stream, bindTools, withStructuredOutput, OpenAIEmbeddings, and grounded answers. The
 * `// recipe:` block is the code docs/clients.md shows (recipes.test.ts keeps them identical).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { tool } from '@langchain/core/tools';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import { z } from 'zod';
import { REFUND_SENTENCE, startClientFixture, type ClientFixture } from './fixture.ts';

describe('client matrix: LangChain.js', () => {
  let fx: ClientFixture;
  let chat: ChatOpenAI;
  before(async () => {
    fx = await startClientFixture();
    chat = new ChatOpenAI({ model: 'llama', apiKey: fx.apiKey, configuration: { baseURL: fx.baseURL }, maxRetries: 0 });
  });
  after(() => fx.stop());

  it('invokes and streams ChatOpenAI', async () => {
    fx.upstream.plan({ content: 'Invoked answer.' }, { content: 'Streamed in pieces.' });
    const message = await chat.invoke([['human', 'hi']]);
    assert.equal(message.content, 'Invoked answer.');
    let text = '';
    for await (const chunk of await chat.stream('hi')) text += String(chunk.content);
    assert.equal(text, 'Streamed in pieces.');
  });

  it('binds tools and returns parsed tool calls', async () => {
    fx.upstream.plan({ toolCalls: [{ name: 'get_weather', arguments: '{"city":"Rotterdam"}' }] });
    const getWeather = tool(async ({ city }) => `sunny in ${city}`, {
      name: 'get_weather',
      description: 'Current weather in a city',
      schema: z.object({ city: z.string() }),
    });
    const message = await chat.bindTools([getWeather]).invoke('Weather in Rotterdam?');
    assert.deepEqual(message.tool_calls?.map(({ name, args }) => ({ name, args })), [{ name: 'get_weather', args: { city: 'Rotterdam' } }]);
    assert.equal(fx.upstream.requests.at(-1)!.body.tools[0].function.name, 'get_weather');
  });

  it('returns structured output with withStructuredOutput', async () => {
    fx.upstream.plan({ content: '{"city":"Rotterdam","weekday":"Tuesday"}' });
    const shipping = await chat.withStructuredOutput(z.object({ city: z.string(), weekday: z.string() })).invoke('Where and when do parcels ship?');
    assert.deepEqual(shipping, { city: 'Rotterdam', weekday: 'Tuesday' });
  });

  it('embeds with OpenAIEmbeddings', async () => {
    const embeddings = new OpenAIEmbeddings({ model: fx.embeddingModel, apiKey: fx.apiKey, configuration: { baseURL: fx.baseURL }, maxRetries: 0 });
    const [query, documents] = await Promise.all([embeddings.embedQuery('refunds'), embeddings.embedDocuments(['refunds', 'parcels'])]);
    assert.equal(query.length, fx.dimensions);
    assert.equal(documents.length, 2);
    assert.deepEqual(documents[0]!.map((x) => x.toFixed(5)), query.map((x) => x.toFixed(5)), 'the same text embeds the same');
  });

  it('does not forward per-call fields it does not know, which is why the recipe uses modelKwargs', async () => {
    fx.upstream.plan({ content: 'Not grounded.' });
    const message = await chat.invoke('How many days do refunds take?', { knowledge_bases: [fx.kbId] } as object);
    assert.equal(message.content, 'Not grounded.');
    const sent = fx.upstream.requests.at(-1)!.body.messages as Array<{ content: string }>;
    assert.ok(!sent.some((m) => m.content.includes('<sources>')), 'no sources injected: Cairn never saw knowledge_bases');
  });

  it('answers grounded in a knowledge base through modelKwargs, with citations in the raw response', async () => {
    const { baseURL, apiKey, kbId } = fx;
    // recipe: langchain
    // ChatOpenAI sends only the fields it knows, also per call (`.invoke(messages, { ... })`), so
    // Cairn's fields go in `modelKwargs`: one model object per set of knowledge bases (cheap to make).
    const groundedIn = (knowledgeBases: string[]) =>
      new ChatOpenAI({
        model: 'extractive',
        apiKey,
        configuration: { baseURL },
        modelKwargs: { knowledge_bases: knowledgeBases },
        __includeRawResponse: true, // keeps Cairn's `citations` (additional_kwargs.__raw_response)
      });
    const answer = await groundedIn([kbId]).invoke('How many days do refunds take?');
    const { citations } = answer.additional_kwargs.__raw_response as { citations: Array<{ index: number; filename: string; text: string }> };
    // end recipe
    assert.match(String(answer.content), REFUND_SENTENCE);
    assert.equal(citations[0]!.filename, 'handbook.txt');
    assert.equal(citations[0]!.index, 1);
    assert.deepEqual(fx.upstream.requests.filter((request) => request.body.knowledge_bases), [], 'nothing leaked upstream');
  });
});
