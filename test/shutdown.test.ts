/** Graceful shutdown: stop accepting, let a stream in flight finish, then close. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import OpenAI from 'openai';
import { startCairn, stubModel } from './helpers/harness.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';

describe('graceful shutdown', () => {
  it('lets an in-flight stream finish and refuses new connections', async () => {
    const upstream = await StubUpstream.start({ name: 'slow', chunkDelayMs: 20, content: 'one two three four five six seven eight' });
    const cairn = await startCairn({ pglite: true, modelConfig: { models: [stubModel('m', [upstream.url])] } });
    try {
      const stream = await cairn.client().chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'go' }], stream: true });
      const iterator = stream[Symbol.asyncIterator]();
      await iterator.next();
      const stopped = cairn.server.stop();
      let text = '';
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) text += next.value.choices[0]?.delta.content ?? '';
      assert.equal(text.trim(), 'one two three four five six seven eight');
      await stopped;
      await assert.rejects(
        new OpenAI({ baseURL: cairn.baseURL, apiKey: cairn.key, maxRetries: 0 }).models.list(),
        OpenAI.APIConnectionError,
      );
    } finally {
      await cairn.stop();
      await upstream.close();
    }
  });
});
