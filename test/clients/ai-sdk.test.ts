/**
 * Client matrix: the Vercel AI SDK (`ai`) with `@ai-sdk/openai`'s `.chat()` and with
 * `@ai-sdk/openai-compatible`, against a running Cairn. The `// recipe:` blocks are the code
 * docs/clients.md shows (recipes.test.ts keeps the two identical).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible, type MetadataExtractor } from '@ai-sdk/openai-compatible';
import { embedMany, generateObject, generateText, streamText } from 'ai';
import { z } from 'zod';
import { QUESTION, REFUND_SENTENCE, startClientFixture, type ClientFixture } from './fixture.ts';

describe('client matrix: AI SDK', () => {
  let fx: ClientFixture;
  before(async () => {
    fx = await startClientFixture();
  });
  after(() => fx.stop());

  describe('@ai-sdk/openai .chat()', () => {
    it('answers plain and streamed chat through the upstream model', async () => {
      const openai = createOpenAI({ baseURL: fx.baseURL, apiKey: fx.apiKey });
      fx.upstream.plan({ content: 'Hello from the stub.' }, { content: 'Streamed hello.' });
      const plain = await generateText({ model: openai.chat('llama'), prompt: 'Say hello', maxRetries: 0 });
      assert.equal(plain.text, 'Hello from the stub.');
      assert.equal(plain.finishReason, 'stop');
      const streamed = streamText({ model: openai.chat('llama'), prompt: 'Say hello', maxRetries: 0 });
      let text = '';
      for await (const delta of streamed.textStream) text += delta;
      assert.equal(text, 'Streamed hello.');
      assert.equal(await streamed.finishReason, 'stop');
    });

    it('returns a grounded answer whose citations arrive as sources', async () => {
      const { baseURL, apiKey, kbId } = fx;
      // recipe: ai-sdk-openai
      // @ai-sdk/openai sends only the fields it knows, so knowledge_bases goes in through `fetch`.
      const withKnowledgeBases = (ids: string[]): typeof fetch => (url, init) =>
        fetch(url, { ...init, body: JSON.stringify({ ...JSON.parse(String(init?.body)), knowledge_bases: ids }) });
      const cairn = createOpenAI({ baseURL, apiKey, fetch: withKnowledgeBases([kbId]) });
      const { text, sources } = await generateText({ model: cairn.chat('extractive'), prompt: 'How many days do refunds take?' });
      // sources: [{ sourceType: 'url', url: '<baseURL>/files/<file_id>/content', title: 'handbook.txt' }]
      // end recipe
      assert.match(text, REFUND_SENTENCE);
      assert.deepEqual(sources.map((source) => (source.sourceType === 'url' ? { sourceType: 'url', url: source.url, title: source.title } : source)), [
        { sourceType: 'url', url: `${fx.baseURL}/files/${fx.fileId}/content`, title: 'handbook.txt' },
      ]);
    });

    it('streams a grounded answer to the end (finishReason stop) with its sources', async () => {
      const withKnowledgeBases = (ids: string[]): typeof fetch => (url, init) =>
        fetch(url, { ...init, body: JSON.stringify({ ...JSON.parse(String(init?.body)), knowledge_bases: ids }) });
      const cairn = createOpenAI({ baseURL: fx.baseURL, apiKey: fx.apiKey, fetch: withKnowledgeBases([fx.kbId]) });
      const streamed = streamText({ model: cairn.chat('extractive'), prompt: QUESTION, maxRetries: 0 });
      let streamedText = '';
      for await (const delta of streamed.textStream) streamedText += delta;
      assert.match(streamedText, REFUND_SENTENCE);
      assert.equal(await streamed.finishReason, 'stop', 'the finish chunk with annotations does not end the stream in error');
      assert.deepEqual((await streamed.sources).map((source) => source.sourceType === 'url' && source.title), ['handbook.txt']);
    });

    it('generates a schema-checked object and embeds', async () => {
      const openai = createOpenAI({ baseURL: fx.baseURL, apiKey: fx.apiKey });
      fx.upstream.plan({ content: '{"city":"Rotterdam","weekday":"Tuesday"}' });
      const { object } = await generateObject({
        model: openai.chat('llama'),
        schema: z.object({ city: z.string(), weekday: z.string() }),
        prompt: 'Where and when do parcels ship?',
        maxRetries: 0,
      });
      assert.deepEqual(object, { city: 'Rotterdam', weekday: 'Tuesday' });
      assert.equal(fx.upstream.requests.at(-1)!.body.response_format.type, 'json_schema', 'the schema went upstream');
      const { embeddings } = await embedMany({ model: openai.embedding(fx.embeddingModel), values: ['refunds', 'parcels'], maxRetries: 0 });
      assert.equal(embeddings.length, 2);
      assert.ok(embeddings.every((vector) => vector.length === fx.dimensions));
      assert.notDeepEqual(embeddings[0], embeddings[1]);
    });
  });

  describe('@ai-sdk/openai-compatible', () => {
    it('answers plain and streamed chat, generates objects and embeds', async () => {
      const provider = createOpenAICompatible({ name: 'cairn', baseURL: fx.baseURL, apiKey: fx.apiKey, includeUsage: true });
      fx.upstream.plan({ content: 'Compatible hello.' }, { content: 'Compatible stream.' }, { content: '{"city":"Rotterdam"}' });
      const plain = await generateText({ model: provider.chatModel('llama'), prompt: 'Say hello', maxRetries: 0 });
      assert.equal(plain.text, 'Compatible hello.');
      assert.ok(plain.usage.inputTokens! > 0);
      const streamed = streamText({ model: provider.chatModel('llama'), prompt: 'Say hello', maxRetries: 0 });
      let text = '';
      for await (const delta of streamed.textStream) text += delta;
      assert.equal(text, 'Compatible stream.');
      const { object } = await generateObject({ model: provider.chatModel('llama'), schema: z.object({ city: z.string() }), prompt: 'Where?', maxRetries: 0 });
      assert.deepEqual(object, { city: 'Rotterdam' });
      const { embeddings } = await embedMany({ model: provider.embeddingModel(fx.embeddingModel), values: ['a', 'b', 'c'], maxRetries: 0 });
      assert.equal(embeddings.length, 3);
      assert.equal(embeddings[2]!.length, fx.dimensions);
    });

    it('passes knowledge_bases as a provider option and reads citations through a metadata extractor', async () => {
      const { baseURL, apiKey, kbId } = fx;
      // recipe: ai-sdk-openai-compatible
      // Unknown keys under providerOptions.<name> are sent as body fields; Cairn's `citations`
      // come back as providerMetadata through a metadata extractor.
      const citationsExtractor: MetadataExtractor = {
        extractMetadata: async ({ parsedBody }) => ({ cairn: { citations: (parsedBody as { citations?: [] }).citations ?? [] } }),
        createStreamExtractor: () => {
          let citations: [] = [];
          return {
            processChunk: (chunk) => void (citations = (chunk as { citations?: [] }).citations ?? citations),
            buildMetadata: () => ({ cairn: { citations } }),
          };
        },
      };
      const cairn = createOpenAICompatible({ name: 'cairn', baseURL, apiKey, metadataExtractor: citationsExtractor });
      const { text, providerMetadata } = await generateText({
        model: cairn.chatModel('extractive'),
        prompt: 'How many days do refunds take?',
        providerOptions: { cairn: { knowledge_bases: [kbId] } },
      });
      const citations = providerMetadata?.cairn?.citations as Array<{ index: number; filename: string; text: string }>;
      // end recipe
      assert.match(text, REFUND_SENTENCE);
      assert.equal(citations[0]!.filename, 'handbook.txt');
      assert.equal(citations[0]!.index, 1);

      const streamed = streamText({ model: cairn.chatModel('extractive'), prompt: QUESTION, providerOptions: { cairn: { knowledge_bases: [kbId] } } });
      let streamedText = '';
      for await (const delta of streamed.textStream) streamedText += delta;
      assert.match(streamedText, REFUND_SENTENCE);
      const streamedCitations = (await streamed.providerMetadata)?.cairn?.citations as Array<{ filename: string }>;
      assert.equal(streamedCitations[0]!.filename, 'handbook.txt');
    });
  });
});
