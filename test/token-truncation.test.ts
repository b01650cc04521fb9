import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { truncateToTokens } from '../src/models/token-truncation.ts';

/** One token per started group of four non-space characters: "Refunds" is 2 tokens, "are" 1. */
const counter = { count: (text: string): number => (text.match(/\S{1,4}/g) ?? []).length };
const ANSWER = 'Refunds are processed within 5 days. [2]';

describe('truncateToTokens', () => {
  it('leaves a text that fits as it is', () => {
    assert.deepEqual(truncateToTokens(ANSWER, 100, counter), { text: ANSWER, truncated: false });
    assert.deepEqual(truncateToTokens(ANSWER, counter.count(ANSWER), counter), { text: ANSWER, truncated: false });
  });

  it('cuts after the last whole word that fits', () => {
    assert.deepEqual(truncateToTokens(ANSWER, 3, counter), { text: 'Refunds are', truncated: true });
    assert.deepEqual(truncateToTokens(ANSWER, 5, counter), { text: 'Refunds are', truncated: true }, '"processed" needs 3 more');
    assert.deepEqual(truncateToTokens(ANSWER, 6, counter), { text: 'Refunds are processed', truncated: true });
  });

  it('cuts inside the first word when not even that one fits, never beyond the budget', () => {
    const cut = truncateToTokens(ANSWER, 1, counter);
    assert.equal(cut.truncated, true);
    assert.ok(cut.text.length > 0 && 'Refunds'.startsWith(cut.text), cut.text);
    assert.ok(counter.count(cut.text) <= 1);
  });
});
