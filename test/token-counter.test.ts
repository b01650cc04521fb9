import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AutoTokenizer, type PreTrainedTokenizer } from '@huggingface/transformers';
import { defaultTokenizerDirectory, splitByTokens, WordPieceTokenCounter } from '../src/ingest/token-counter.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let counter: WordPieceTokenCounter;
let reference: PreTrainedTokenizer;
const referenceCount = (text: string): number => reference.encode(text, { add_special_tokens: false }).length;

/** Deterministic pseudo-random strings (xorshift), so a failure reproduces. */
function randomString(length: number, alphabet: string, seed: number): string {
  const symbols = [...alphabet]; // code points: an emoji is one symbol
  let state = seed;
  const characters: string[] = [];
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    characters.push(symbols[(state >>> 0) % symbols.length] ?? 'a');
  }
  return characters.join('');
}

before(async () => {
  counter = await WordPieceTokenCounter.load();
  reference = await AutoTokenizer.from_pretrained(defaultTokenizerDirectory(), { local_files_only: true });
});

describe('WordPieceTokenCounter', () => {
  test('finds the shipped tokenizer by walking up from the module', () => {
    const directory = defaultTokenizerDirectory();
    assert.equal(directory, path.join(repoRoot, 'assets', 'tokenizer'));
    assert.ok(existsSync(path.join(directory, 'tokenizer.json')));
  });

  test('the shipped tokenizer passes every shortcut (the fast paths are in use)', () => {
    assert.deepEqual(counter.shortcuts, { words: true, punctuation: true, ideographs: true, wordPiece: true });
  });

  test('counts without special tokens', () => {
    assert.equal(counter.count(''), 0);
    assert.equal(counter.count(' \n\t\r\n '), 0);
    assert.equal(counter.count('hello'), 1);
    assert.equal(reference.encode('hello').length, 3, 'the reference adds [CLS] and [SEP]');
    assert.equal(counter.count('hello world'), 2);
  });

  test('agrees with the tokenizer on punctuation, Unicode, CJK, control characters and special tokens', () => {
    const texts = [
      'The quick brown fox jumps over the lazy dog.',
      'Héllo wörld İstanbul ǆ 中文字，句子。日本語のテキスト 한국어',
      'foo[MASK]bar [CLS] a\ufeffb a\u00a0b\tc\r\nd',
      'naïve café — “quotes” ‘single’ … €100 ½ ﬁnance (e.g. U.S.A.) 3.14 $5 50% a/b c\\d',
      '😀 emoji 👍🏽 and \u0301accent, \u0000\u0007control\u001fchars\u007f',
      'ＦＵＬＬ　ｗｉｄｔｈ ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠀀𠀁 丽 豈',
      `${'x'.repeat(150)} ${'y1'.repeat(50)} ${'Ab'.repeat(33)} ${'q'.repeat(100)} ${'q'.repeat(101)}`,
      '{"key":"value","n":[1,2,3]} <div class="a">x</div> SELECT * FROM t WHERE id=1;',
      'Unaffable tokenization of COVID-19 in children: pneumonoultramicroscopicsilicovolcanoconiosis',
    ];
    for (const text of texts) assert.equal(counter.count(text), referenceCount(text), JSON.stringify(text));
  });

  test('agrees with the tokenizer on random alphanumeric words (its direct WordPiece path)', () => {
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
    for (let seed = 1; seed <= 300; seed++) {
      const word = randomString(1 + (seed % 120), alphabet, seed);
      assert.equal(counter.count(word), referenceCount(word), word);
    }
  });

  test('counts the same on a second pass (the memo changes nothing)', () => {
    const text = 'Cells, cells and more cells; the cell’s cellular cellularity.';
    const first = counter.count(text);
    assert.equal(counter.count(text), first);
    assert.equal(first, referenceCount(text));
  });

  test('loads another tokenizer directory and rejects a missing one', async () => {
    // A copy in a directory of its own, so the explicit path is what gets read.
    const directory = await mkdtemp(path.join(os.tmpdir(), 'cairn-tokenizer-'));
    try {
      await cp(defaultTokenizerDirectory(), directory, { recursive: true });
      const copy = await WordPieceTokenCounter.load(directory);
      assert.equal(copy.count('Tokenizers split words into pieces.'), referenceCount('Tokenizers split words into pieces.'));
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
    await assert.rejects(WordPieceTokenCounter.load(path.join(os.tmpdir(), 'cairn-no-such-tokenizer')));
  });

  test('load() without a directory reads the shipped tokenizer, into a counter of its own', async () => {
    const [first, second] = await Promise.all([WordPieceTokenCounter.load(), WordPieceTokenCounter.load()]);
    assert.notEqual(first, second, 'no process-wide shared counter');
    const text = 'Tokenizers split words into pieces.';
    assert.equal(first.count(text), referenceCount(text));
    assert.equal(second.count(text), counter.count(text));
  });
});

describe('WordPieceTokenCounter with a tokenizer that breaks its shortcuts', () => {
  let dir: string;
  before(async () => {
    // WhitespaceSplit keeps "a,b" one word, and the vocabulary has "a,b" as one piece: punctuation
    // is not always its own token here, so the counter must not assume it.
    dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-tokenizer-'));
    const vocab: Record<string, number> = { '[UNK]': 0, a: 1, b: 2, ',': 3, 'a,b': 4, '##b': 5, '##,': 6, '##a': 7 };
    await writeFile(
      path.join(dir, 'tokenizer.json'),
      JSON.stringify({
        version: '1.0',
        added_tokens: [{ id: 0, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
        normalizer: null,
        pre_tokenizer: { type: 'WhitespaceSplit' },
        post_processor: null,
        decoder: null,
        model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
      }),
    );
    await writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'BertTokenizer', unk_token: '[UNK]' }));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('counts exactly anyway', async () => {
    const odd = await WordPieceTokenCounter.load(dir);
    const tokenizer = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
    // "abc": "c" is outside the vocabulary, so the whole word is one [UNK] (the direct WordPiece path).
    assert.equal(odd.shortcuts.wordPiece, true);
    for (const text of ['a,b', 'a,b a', 'a , b', 'ab,', 'ba,b,a', 'abc', 'aab bab', 'ab'.repeat(60)]) {
      assert.equal(odd.count(text), tokenizer.encode(text, { add_special_tokens: false }).length, text);
    }
    assert.equal(odd.count('a,b'), 1);
    assert.equal(odd.shortcuts.punctuation, false, 'punctuation is counted by the tokenizer');
    assert.equal(odd.shortcuts.ideographs, false);
  });
});

describe('splitByTokens', () => {
  function assertPieces(text: string, maxTokens: number, maxChars: number): void {
    const pieces = splitByTokens(counter, text, 0, text.length, maxTokens, maxChars);
    let position = 0;
    for (const piece of pieces) {
      assert.equal(piece.start, position, 'pieces are contiguous');
      assert.ok(piece.end > piece.start, 'pieces are not empty');
      const slice = text.slice(piece.start, piece.end);
      assert.equal(piece.tokens, counter.count(slice));
      assert.ok(piece.tokens <= maxTokens, `${piece.tokens} tokens > ${maxTokens}`);
      assert.ok(slice.length <= maxChars, `${slice.length} chars > ${maxChars}`);
      const last = slice.charCodeAt(slice.length - 1);
      assert.ok(last < 0xd800 || last > 0xdbff, 'a surrogate pair is never split');
      position = piece.end;
    }
    assert.equal(position, text.length, 'pieces cover the text');
  }

  test('cuts dense text (a token per character or two) below maxTokens', () => {
    const text = 'a,b;c.'.repeat(3000);
    assertPieces(text, 100, 1600);
    const pieces = splitByTokens(counter, text, 0, text.length, 100, 1600);
    assert.ok(pieces.every((piece, i) => i === pieces.length - 1 || piece.tokens >= 90), 'pieces are nearly full');
  });

  test('cuts sparse text (a 100-character run is one [UNK]) at maxChars', () => {
    const text = 'a'.repeat(50_000);
    assertPieces(text, 100, 1600);
    assert.equal(splitByTokens(counter, text, 0, text.length, 100, 1600).length, Math.ceil(50_000 / 1600));
  });

  test('never splits a surrogate pair', () => {
    assertPieces('😀'.repeat(500), 64, 1024);
    assertPieces(randomString(4000, 'ab😀中,', 7), 50, 800);
  });

  test('cuts only the requested range', () => {
    const text = `head ${'z'.repeat(5000)} tail`;
    const pieces = splitByTokens(counter, text, 5, 5005, 100, 1600);
    assert.equal(pieces[0]?.start, 5);
    assert.equal(pieces.at(-1)?.end, 5005);
  });
});
