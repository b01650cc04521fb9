/**
 * Parsing and chunking in the worker-thread pool: the same chunks as parsing and chunking in this thread,
 * clear failures for a file over a per-format limit or over its time budget, and a knowledge base whose other
 * files still complete when one of them is refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { toFile } from 'openai';
import { chunkDocument } from '../src/ingest/chunker.ts';
import { IngestError } from '../src/ingest/document.ts';
import { DocumentWorkerPool } from '../src/ingest/document-worker-pool.ts';
import { parseDocument } from '../src/ingest/parsers/index.ts';
import { WordPieceTokenCounter } from '../src/ingest/token-counter.ts';
import { makePdf } from './helpers/documents.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { until } from './helpers/wait.ts';

const CHUNKING = { maxTokens: 100, overlapTokens: 20 };
const SENTENCE = 'The lighthouse keeper logs the weather at dawn and again at dusk, in a book kept by the lamp.';

function csv(rows: number): Buffer {
  const lines = ['id,city,note'];
  for (let row = 1; row <= rows; row++) lines.push(`${row},Town ${row % 13},${SENTENCE}`);
  return Buffer.from(lines.join('\n'));
}

describe('DocumentWorkerPool', () => {
  const pool = new DocumentWorkerPool({ threads: 2 });
  after(() => pool.close());

  it('gives the chunks that parsing and chunking in this thread give, for streamed and whole-parsed formats', async () => {
    const counter = await WordPieceTokenCounter.load();
    const samples: Array<[Buffer, string]> = [
      [csv(300), 'rows.csv'],
      [Buffer.from(JSON.stringify(Array.from({ length: 200 }, (_, id) => ({ id, text: SENTENCE, tags: ['a', id] })))), 'items.json'],
      [Buffer.from(`# Title\n\n${SENTENCE.repeat(40)}\n\n## Second\n\n${SENTENCE.repeat(30)}`), 'notes.md'],
      [Buffer.from(SENTENCE.repeat(500)), 'long.txt'],
      [await makePdf([SENTENCE.repeat(12), SENTENCE.repeat(9), SENTENCE.repeat(15)]), 'pages.pdf'],
    ];
    for (const [bytes, filename] of samples) {
      const expected = chunkDocument(await parseDocument(bytes, filename), CHUNKING, counter);
      assert.ok(expected.length > 3, `${filename} makes several chunks`);
      assert.deepEqual(await pool.chunkFile(bytes, filename, CHUNKING), expected, filename);
    }
  });

  it('refuses a file over a per-format limit with an IngestError naming the limit', async () => {
    const strict = new DocumentWorkerPool({ threads: 1, maxCsvRows: 100, maxJsonValues: 50 });
    const few = new DocumentWorkerPool({ threads: 1, maxChunks: 3 });
    try {
      await assert.rejects(strict.chunkFile(csv(101), 'rows.csv', CHUNKING), (error: unknown) => {
        assert.ok(error instanceof IngestError);
        assert.equal(error.code, 'invalid_file');
        assert.equal(error.message, 'The CSV file has more than 100 rows; Cairn ingests at most 100 rows per file');
        return true;
      });
      const values = JSON.stringify(Array.from({ length: 51 }, (_, id) => id));
      await assert.rejects(strict.chunkFile(Buffer.from(values), 'values.json', CHUNKING), /more than 50 values; Cairn ingests at most 50 values per file/);
      await assert.rejects(few.chunkFile(Buffer.from(SENTENCE.repeat(100)), 'long.txt', CHUNKING), /The file has more than 3 chunks; Cairn ingests at most 3 chunks per file$/);
      // At the limit is fine, and the pool keeps serving after refusals.
      assert.ok((await strict.chunkFile(csv(100), 'rows.csv', CHUNKING)).length > 0);
    } finally {
      await Promise.all([strict.close(), few.close()]);
    }
  });

  it('stops a file over its time budget with a clear error, and the next file is served', async () => {
    const hasty = new DocumentWorkerPool({ threads: 1, timeoutMs: 1 });
    try {
      // A thread cannot even start within 1 ms: the budget ends first, whatever the machine's load.
      await assert.rejects(hasty.chunkFile(csv(2000), 'rows.csv', CHUNKING), (error: unknown) => {
        assert.ok(error instanceof IngestError);
        assert.match(error.message, /^Parsing and chunking the file took longer than 0.001 s; it was stopped$/);
        return true;
      });
    } finally {
      await hasty.close();
    }
    assert.ok((await pool.chunkFile(csv(10), 'rows.csv', CHUNKING)).length > 0);
  });

  it('passes an abort through as the abort, not as a failed file', async () => {
    const controller = new AbortController();
    const reason = new Error('job cancelled');
    const pending = pool.chunkFile(csv(20_000), 'rows.csv', CHUNKING, controller.signal);
    controller.abort(reason);
    await assert.rejects(pending, (error: unknown) => error === reason);
  });
});

describe('a knowledge base with a file over a per-format limit', () => {
  let cairn: TestCairn;
  before(async () => {
    cairn = await startCairn({ env: { CAIRN_MAX_CSV_ROWS: '100' } });
  });
  after(() => cairn.stop());

  it('fails that file with a last_error naming the limit while the other file completes', async () => {
    const client = cairn.client();
    const kb = await client.vectorStores.create({ name: 'limits' });
    const tooLong = await client.files.create({ file: await toFile(csv(101), 'ledger.csv'), purpose: 'assistants' });
    const good = await client.files.create({ file: await toFile(Buffer.from(SENTENCE), 'keeper.txt'), purpose: 'assistants' });
    await client.vectorStores.files.create(kb.id, { file_id: tooLong.id });
    await client.vectorStores.files.create(kb.id, { file_id: good.id });

    const retrieve = (fileId: string) => client.vectorStores.files.retrieve(fileId, { vector_store_id: kb.id });
    await until('both files settle', async () => {
      const states = await Promise.all([retrieve(tooLong.id), retrieve(good.id)]);
      return states.every((file) => file.status !== 'in_progress');
    }, 60_000);
    const [refused, completed] = await Promise.all([retrieve(tooLong.id), retrieve(good.id)]);

    assert.equal(refused.status, 'failed');
    assert.equal(refused.last_error?.code, 'invalid_file');
    assert.equal(refused.last_error?.message, 'The CSV file has more than 100 rows; Cairn ingests at most 100 rows per file');
    assert.equal(completed.status, 'completed');
    const hits = await client.vectorStores.search(kb.id, { query: 'when does the lighthouse keeper log the weather' });
    assert.deepEqual(hits.data.map((hit) => hit.file_id), [good.id], 'only the completed file is searchable');
  });
});
