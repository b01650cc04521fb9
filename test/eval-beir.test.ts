/**
 * `cairn eval beir`: the loaders, and a lexical run against a real Cairn (Postgres + Qdrant) on
 * test/fixtures/beir-mini, whose BM25 ranking is known exactly:
 *
 * Every document is 12 distinct terms after stop words (title + text), so each has the same
 * length norm and every matching term adds w·idf(term) with the same w. Each query's matching
 * documents form a chain of term sets (A ⊃ B ⊃ C), so their order holds for any positive IDFs:
 *   q1 "basalt magma in a caldera"  d1 {basalt, magma, caldera} > d2 {basalt, magma} > d3 {basalt}
 *   q2 "saffron risotto"            d4 {saffron, risotto} > d5 {saffron}
 *   q3 "… telescope … nebula spectrograph"
 *                                   d6 {telescope, nebula, spectrograph} > d8 {telescope, nebula} > d2 {telescope}
 * No other document shares a term with these queries (d7, about lava, shares none with q1).
 * q4 is in queries.jsonl but not in qrels/test.tsv, so it is not evaluated.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import {
  documentText,
  rankDocuments,
  readCorpus,
  readQrels,
  readQueries,
  runBeirEval,
  type BeirDocument,
  type ModeScores,
} from '../src/eval/beir.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';

const FIXTURE = path.resolve(import.meta.dirname, 'fixtures/beir-mini');

class Captured extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

const close = (actual: number, expected: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: ${actual} ≠ ${expected}`);

describe('BEIR loaders', () => {
  test('qrels: CRLF line endings and the header line, grades kept (0 included)', async () => {
    const raw = await readFile(path.join(FIXTURE, 'qrels/test.tsv'), 'utf8');
    assert.ok(raw.startsWith('query-id\tcorpus-id\tscore\r\n'), 'the fixture keeps its header and CRLF endings, like BEIR\'s files');
    const qrels = await readQrels(path.join(FIXTURE, 'qrels/test.tsv'));
    assert.deepEqual(
      qrels,
      new Map([
        ['q1', new Map([['d2', 2], ['d3', 1], ['d7', 1]])],
        ['q2', new Map([['d4', 1], ['d5', 2]])],
        ['q3', new Map([['d6', 0], ['d2', 1]])],
      ]),
    );
  });

  test('qrels: LF without a header also parse; a bad score names its line', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cairn-qrels-'));
    try {
      await writeFile(path.join(dir, 'plain.tsv'), 'a\tx\t1\n\na\ty\t3\nb\tx\t0\n');
      assert.deepEqual(await readQrels(path.join(dir, 'plain.tsv')), new Map([['a', new Map([['x', 1], ['y', 3]])], ['b', new Map([['x', 0]])]]));
      await writeFile(path.join(dir, 'bad.tsv'), 'query-id\tcorpus-id\tscore\r\na\tx\t1\r\na\ty\thigh\r\n');
      await assert.rejects(readQrels(path.join(dir, 'bad.tsv')), /bad\.tsv:3: score 'high' is not an integer/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('queries and the streamed corpus', async () => {
    const queries = await readQueries(FIXTURE);
    assert.deepEqual([...queries.keys()], ['q1', 'q2', 'q3', 'q4']);
    assert.equal(queries.get('q2'), 'saffron risotto');
    const docs: BeirDocument[] = [];
    for await (const doc of readCorpus(FIXTURE)) docs.push(doc);
    assert.deepEqual(docs.map((doc) => doc.id), ['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'd8']);
    assert.equal(documentText(docs[3]!), 'Saffron risotto\n\nCooks toast arborio grains, add warm stock slowly, then finish with butter.');
    assert.equal(docs[4]!.title, '');
    assert.equal(documentText(docs[4]!), docs[4]!.text, 'no blank lines before an untitled document');
  });

  test('hits → document ids: first chunk wins, the query\'s own id is dropped, unknown files are an error', () => {
    const files = new Map([['file-a', 'A'], ['file-b', 'B'], ['file-c', 'C'], ['file-q', 'q7']]);
    const hits = ['file-b', 'file-a', 'file-b', 'file-q', 'file-c', 'file-a'].map((file_id) => ({ file_id }));
    assert.deepEqual(rankDocuments(hits, files, 'q7'), ['B', 'A', 'C']);
    assert.deepEqual(rankDocuments(hits, files), ['B', 'A', 'q7', 'C']);
    assert.throws(() => rankDocuments([{ file_id: 'file-x' }], files), /file-x/);
  });
});

describe('runBeirEval against a running Cairn', () => {
  let cairn: TestCairn;
  before(async () => {
    cairn = await startCairn();
  });
  after(() => cairn.stop());

  const api = async <T>(route: string): Promise<T> => {
    const response = await fetch(`${cairn.baseURL}${route}`, { headers: { authorization: `Bearer ${cairn.key}` } });
    assert.equal(response.status, 200, route);
    return (await response.json()) as T;
  };

  test('lexical: the exact rankings and the hand-computed nDCG@10, Recall@10/100 and MRR@10; then cleans up', async () => {
    const out = new Captured();
    const result = await runBeirEval(FIXTURE, { baseUrl: cairn.baseURL, apiKey: cairn.key, modes: ['lexical'], concurrency: 3, out });

    assert.equal(result.documents, 8);
    assert.equal(result.queries, 3);
    assert.equal(result.modes.length, 1);
    const lexical = result.modes[0]!;
    assert.equal(lexical.skipped, false, JSON.stringify(lexical));
    const scores = lexical as ModeScores;
    assert.equal(scores.embeddingModel, 'none');
    assert.equal(scores.failedFiles, 0);
    assert.equal(scores.chunks, 8, 'one chunk per short document');
    assert.deepEqual(
      scores.perQuery.map((query) => [query.queryId, query.ranked]),
      [
        ['q1', ['d1', 'd2', 'd3']],
        ['q2', ['d4', 'd5']],
        ['q3', ['d6', 'd8', 'd2']],
      ],
    );

    // nDCG@10 by hand. Discounts: rank 1 → 1/log2(2) = 1, rank 2 → 1/log2(3), rank 3 → 1/log2(4) = 0.5.
    const rank2 = 0.6309297535714575; // 1/log2(3)
    // q1: ranked d1 (0), d2 (2), d3 (1); qrels d2=2, d3=1, d7=1 (d7 never retrieved).
    //   DCG  = 0·1 + 2·rank2 + 1·0.5 = 1.7618595…;  IDCG = 2·1 + 1·rank2 + 1·0.5 = 3.1309297…
    const q1 = (0 * 1 + 2 * rank2 + 1 * 0.5) / (2 * 1 + 1 * rank2 + 1 * 0.5); // 0.5627272554209044
    // q2: ranked d4 (1), d5 (2); qrels d4=1, d5=2.
    //   DCG  = 1·1 + 2·rank2 = 2.2618595…;  IDCG = 2·1 + 1·rank2 = 2.6309297…
    const q2 = (1 * 1 + 2 * rank2) / (2 * 1 + 1 * rank2); // 0.8597186998521972
    // q3: ranked d6 (judged 0), d8 (unjudged), d2 (1); qrels d6=0, d2=1.
    //   DCG  = 1·0.5;  IDCG = 1·1
    const q3 = (1 * 0.5) / (1 * 1); // 0.5
    close(scores.perQuery[0]!.ndcgAt10, q1, 'q1 nDCG@10');
    close(scores.perQuery[1]!.ndcgAt10, q2, 'q2 nDCG@10');
    close(scores.perQuery[2]!.ndcgAt10, q3, 'q3 nDCG@10');
    close(scores.ndcgAt10, (q1 + q2 + q3) / 3, 'mean nDCG@10'); // 0.6408153184243672
    // Recall@10: q1 finds 2 of its 3 relevant (d7 is missed), q2 2 of 2, q3 1 of 1 (d6's grade 0 is not relevant).
    close(scores.recallAt10, (2 / 3 + 1 + 1) / 3, 'mean Recall@10'); // 8/9
    close(scores.recallAt100, (2 / 3 + 1 + 1) / 3, 'mean Recall@100');
    // MRR@10: first relevant at rank 2 (d2), rank 1 (d4), rank 3 (d2).
    close(scores.mrrAt10, (1 / 2 + 1 + 1 / 3) / 3, 'mean MRR@10'); // 11/18
    assert.deepEqual(scores.perQuery.map((query) => query.mrrAt10), [1 / 2, 1, 1 / 3]);

    assert.equal(scores.perQuery.length, 3);
    for (const query of scores.perQuery) assert.ok(query.latencyMs > 0 && query.latencyMs < 10_000, `latency ${query.latencyMs}`);
    assert.ok(scores.latencyMs.p50 > 0 && scores.latencyMs.p50 <= scores.latencyMs.p95);
    assert.ok(scores.latencyMs.p95 <= Math.max(...scores.perQuery.map((query) => query.latencyMs)));

    assert.match(out.text, /BEIR beir-mini — lexical \(embedding_model none, knowledge base \S+\)/);
    assert.match(out.text, /nDCG@10 +0\.6408\n/);
    assert.match(out.text, /Recall@10 +0\.8889\n/);
    assert.match(out.text, /MRR@10 +0\.6111\n/);

    // Without --keep nothing is left behind: no knowledge base, no uploaded file.
    const kbs = await api<{ data: unknown[] }>('/knowledge_bases');
    assert.deepEqual(kbs.data, []);
    const files = await api<{ data: unknown[] }>('/files');
    assert.deepEqual(files.data, []);
  });

  test('hybrid is skipped with a note when the server has no usable embedding model', async () => {
    // The harness runs with CAIRN_EMBEDDING_MODEL=none: a knowledge base without embedding_model is lexical-only.
    const out = new Captured();
    const byDefault = await runBeirEval(FIXTURE, { baseUrl: cairn.baseURL, apiKey: cairn.key, modes: ['hybrid'], concurrency: 2, out });
    assert.deepEqual(byDefault.modes.map((mode) => [mode.mode, mode.skipped]), [['hybrid', true]]);
    assert.match(out.text, /hybrid: skipped: the server's default embedding model is unavailable/);

    const unknown = await runBeirEval(FIXTURE, {
      baseUrl: cairn.baseURL, apiKey: cairn.key, modes: ['hybrid'], embeddingModel: 'no-such-model', concurrency: 2, out,
    });
    assert.equal(unknown.modes[0]!.skipped, true);
    assert.match(out.text, /hybrid: skipped: the server cannot use embedding model 'no-such-model': .*400.*Unknown embedding model/);

    // Nothing was uploaded, and the lexical-only knowledge base made by the default was deleted.
    assert.deepEqual((await api<{ data: unknown[] }>('/knowledge_bases')).data, []);
    assert.deepEqual((await api<{ data: unknown[] }>('/files')).data, []);
  });
});
