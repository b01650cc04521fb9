import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_QUERY_CHARS, retrievalQuery } from '../src/rag/chat-retrieval.ts';

describe('retrievalQuery', () => {
  it('searches a short last user message as it is', () => {
    const messages = [{ role: 'user', content: 'first' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: '  What is the refund policy? ' }];
    assert.equal(retrievalQuery(messages), 'What is the refund policy?');
  });

  it('searches only the tail of a huge message, starting at a word, where the question is', () => {
    const pasted = 'lorem ipsum dolor '.repeat(1_000_000); // 18 MB
    const query = retrievalQuery([{ role: 'user', content: `${pasted}\n\nWhat does the contract say about termination?` }]);
    assert.ok(query.length <= MAX_QUERY_CHARS, `${query.length} characters`);
    assert.ok(query.length > MAX_QUERY_CHARS - 64);
    assert.ok(query.endsWith('What does the contract say about termination?'));
    assert.match(query, /^(lorem|ipsum|dolor) /, 'starts at a whole word');
  });

  it('does not start a query with half a surrogate pair when the tail has no whitespace', () => {
    const query = retrievalQuery([{ role: 'user', content: '😀'.repeat(10_000) }]);
    assert.ok(query.length <= MAX_QUERY_CHARS);
    assert.equal(query.codePointAt(0), 0x1f600);
  });

  it('still refuses a conversation without user text', () => {
    assert.throws(() => retrievalQuery([{ role: 'system', content: 'be brief' }]), /needs a user message/);
  });
});
