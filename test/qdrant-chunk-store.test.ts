/** Knowledge-base chunks in a real Qdrant (spawned by ManagedQdrant): collections, hybrid search, filters, deletes. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ServiceUnavailableError } from '../src/errors.ts';
import { ManagedQdrant } from '../src/vectors/managed-qdrant.ts';
import { collectionName, LEXICAL_COLLECTION, pointId, QdrantChunkStore, type ChunkPoint } from '../src/vectors/qdrant-chunk-store.ts';
import { MAX_FILTER_DEPTH, openAIFilterSchema, translateFilter, type OpenAIFilter } from '../src/vectors/qdrant-filters.ts';
import { freePort } from './helpers/wait.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const DIMS = 8;
const MODEL_COLLECTION = collectionName('test-model', DIMS);
const LEXICAL = collectionName(null, null);

/** A dense vector pointing mostly along axis `axis`. */
function axis(axis: number): number[] {
  return Array.from({ length: DIMS }, (_, i) => (i === axis ? 1 : 0.05));
}

interface PointSpec {
  project?: string;
  kb?: string;
  file?: string;
  index: number;
  terms: number[];
  dense?: number[];
  attributes?: Record<string, string | number | boolean>;
  generation?: string;
  ready?: boolean;
}

function chunk({ project = 'proj_a', kb = 'kb_1', file = 'file_1', index, terms, dense, attributes = {}, generation = 'g1', ready = true }: PointSpec): ChunkPoint {
  return {
    id: pointId(kb, file, index),
    dense,
    sparse: { indices: terms, values: terms.map(() => 1) },
    payload: {
      project_id: project, kb_id: kb, file_id: file, filename: `${file}.txt`, chunk_index: index, generation, ready,
      text: `chunk ${index} of ${file}`, char_start: index * 100, char_end: index * 100 + 99, attributes,
    },
  };
}

const terms = (...indices: number[]) => ({ indices, values: indices.map(() => 1) });

describe('collection names and point ids', () => {
  it('names one collection per embedding model and dimension', () => {
    assert.equal(collectionName('bge-small-en-v1.5', 384), 'cairn_bge-small-en-v1.5_384');
    assert.equal(collectionName(null, null), 'cairn_lexical');
    const hubId = collectionName('Xenova/bge-small-en-v1.5', 384);
    assert.match(hubId, /^cairn_Xenova-bge-small-en-v1\.5-[0-9a-f]{8}_384$/);
    assert.notEqual(hubId, collectionName('Xenova-bge-small-en-v1.5', 384), 'lossy slugs do not collide');
    assert.throws(() => collectionName('bge-small-en-v1.5', null), /dimension/);
  });

  it('derives stable UUIDv5 point ids from knowledge base, file and chunk index', () => {
    const id = pointId('kb_1', 'file-1', 0);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(pointId('kb_1', 'file-1', 0), id);
    assert.equal(new Set([id, pointId('kb_2', 'file-1', 0), pointId('kb_1', 'file-2', 0), pointId('kb_1', 'file-1', 1)]).size, 4);
  });
});

describe('OpenAI filters', () => {
  it('translates comparisons over attributes, quoting keys Qdrant cannot take bare', () => {
    assert.deepEqual(translateFilter({ type: 'eq', key: 'dept', value: 'legal' }), { must: [{ key: 'attributes.dept', match: { value: 'legal' } }] });
    assert.deepEqual(translateFilter({ type: 'ne', key: 'doc.type', value: 3 }), {
      must_not: [{ key: 'attributes."doc.type"', range: { gte: 3, lte: 3 } }],
    });
    assert.deepEqual(translateFilter({ type: 'or', filters: [{ type: 'in', key: 'k', value: ['a', 1] }, { type: 'lt', key: 'n', value: 2 }] }), {
      should: [
        { should: [{ key: 'attributes.k', match: { any: ['a'] } }, { key: 'attributes.k', range: { gte: 1, lte: 1 } }] },
        { key: 'attributes.n', range: { lt: 2 } },
      ],
    });
  });

  it('validates filters in requests, bounding depth and size', () => {
    const nest = (depth: number): unknown => {
      let filter: unknown = { type: 'eq', key: 'a', value: 1 };
      for (let level = 1; level < depth; level++) filter = { type: 'and', filters: [filter] };
      return filter;
    };
    assert.ok(openAIFilterSchema.safeParse(nest(MAX_FILTER_DEPTH)).success);
    assert.equal(openAIFilterSchema.safeParse(nest(MAX_FILTER_DEPTH + 1)).success, false);
    assert.equal(openAIFilterSchema.safeParse(nest(10_000)).success, false, 'deep bodies fail validation, not the stack');
    const wide = { type: 'or', filters: Array.from({ length: 200 }, () => ({ type: 'and', filters: [{ type: 'eq', key: 'a', value: 1 }] })) };
    assert.equal(openAIFilterSchema.safeParse(wide).success, false, 'too many nodes');
    for (const invalid of [
      { type: 'contains', key: 'a', value: 'x' },
      { type: 'gt', key: 'a', value: '2024' },
      { type: 'in', key: 'a', value: [] },
      { type: 'eq', key: 'a"b', value: 'x' },
      { type: 'and', filters: [] },
    ]) {
      assert.equal(openAIFilterSchema.safeParse(invalid).success, false, JSON.stringify(invalid));
    }
  });
});

describe('QdrantChunkStore on a real Qdrant', () => {
  let root: string;
  let qdrant: ManagedQdrant;
  let store: QdrantChunkStore;

  const collectionInfo = async (name: string) =>
    ((await (await fetch(`${qdrant.url}/collections/${name}`)).json()) as { result: { config: { params: Record<string, any> }; payload_schema: Record<string, any> } }).result; // eslint-disable-line @typescript-eslint/no-explicit-any
  const indexesOf = (hits: Array<{ payload: { chunk_index: number } }>) => hits.map((hit) => hit.payload.chunk_index).sort((a, b) => a - b);

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'cairn-qdrant-store-'));
    qdrant = await ManagedQdrant.start({ storageDir: root, logger: silent });
    store = new QdrantChunkStore({ url: qdrant.url });
  });
  after(async () => {
    await qdrant?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('creates a collection once, also when two processes race to create it', async () => {
    const otherProcess = new QdrantChunkStore({ url: qdrant.url });
    await Promise.all([store.ensureCollection(MODEL_COLLECTION, DIMS), otherProcess.ensureCollection(MODEL_COLLECTION, DIMS)]);
    await store.ensureCollection(MODEL_COLLECTION, DIMS);
    await new QdrantChunkStore({ url: qdrant.url }).ensureCollection(MODEL_COLLECTION, DIMS);
    const info = await collectionInfo(MODEL_COLLECTION);
    assert.deepEqual(info.config.params.vectors, { dense: { size: DIMS, distance: 'Cosine' } });
    assert.deepEqual(info.config.params.sparse_vectors, { bm25: { modifier: 'idf' } });
    assert.deepEqual(info.payload_schema.project_id.params, { type: 'keyword', is_tenant: true });
    for (const field of ['kb_id', 'file_id', 'generation']) assert.equal(info.payload_schema[field].data_type, 'keyword', field);

    await store.ensureCollection(LEXICAL, null);
    assert.deepEqual((await collectionInfo(LEXICAL)).config.params.vectors, {}, 'lexical-only: no dense vector');
  });

  it('finds the right chunk with hybrid and with sparse-only search', async () => {
    const kb = { project: 'proj_h', kb: 'kb_h' };
    await store.ensureCollection(MODEL_COLLECTION, DIMS);
    await store.upsert(MODEL_COLLECTION, [
      chunk({ ...kb, index: 0, terms: [99, 10, 11], dense: axis(0) }),
      chunk({ ...kb, index: 1, terms: [99, 12, 13], dense: axis(1) }),
      chunk({ ...kb, index: 2, terms: [99, 14, 15], dense: axis(2) }),
    ]);
    const search = { projectId: 'proj_h', kbId: 'kb_h', limit: 3 };

    const hybrid = await store.search(MODEL_COLLECTION, { ...search, dense: new Float32Array(axis(2)), sparse: terms(14) });
    assert.equal(hybrid[0]!.id, pointId('kb_h', 'file_1', 2));
    assert.equal(hybrid[0]!.payload.text, 'chunk 2 of file_1');

    const disagreeing = await store.search(MODEL_COLLECTION, { ...search, limit: 2, dense: axis(1), sparse: terms(10) });
    assert.deepEqual(indexesOf(disagreeing), [0, 1], 'fusion keeps the best of both the dense and the sparse candidates');

    const sparseOnly = await store.search(MODEL_COLLECTION, { ...search, sparse: terms(99, 12) });
    assert.equal(sparseOnly[0]!.payload.chunk_index, 1);
    assert.deepEqual(indexesOf(sparseOnly), [0, 1, 2], 'BM25 returns every chunk sharing a term');

    const stopWordsOnly = await store.search(MODEL_COLLECTION, { ...search, dense: axis(0), sparse: terms() });
    assert.equal(stopWordsOnly[0]!.payload.chunk_index, 0, 'a query without terms still searches densely');
    assert.deepEqual(await store.search(MODEL_COLLECTION, { ...search, sparse: terms() }), []);
  });

  it('hides a file’s points until its ingestion run is marked ready', async () => {
    const scope = { projectId: 'proj_r', kbId: 'kb_r' };
    await store.ensureCollection(LEXICAL_COLLECTION, null);
    await store.upsert(LEXICAL_COLLECTION, [
      chunk({ project: 'proj_r', kb: 'kb_r', file: 'f_old', index: 0, terms: [7], generation: 'old' }),
      chunk({ project: 'proj_r', kb: 'kb_r', file: 'f_new', index: 0, terms: [7], generation: 'g2', ready: false }),
    ]);
    const files = async () => (await store.search(LEXICAL_COLLECTION, { ...scope, limit: 10, sparse: terms(7) })).map((hit) => hit.payload.file_id).sort();
    assert.deepEqual(await files(), ['f_old'], 'the half-stored file is invisible');
    await store.markReady(LEXICAL_COLLECTION, { ...scope, fileId: 'f_new', generation: 'other' });
    assert.deepEqual(await files(), ['f_old'], 'only the named generation is published');
    await store.markReady(LEXICAL_COLLECTION, { ...scope, fileId: 'f_new', generation: 'g2' });
    assert.deepEqual(await files(), ['f_new', 'f_old']);
  });

  it('keeps a published run published when a late write of the same run arrives; a new run still overwrites', async () => {
    const scope = { projectId: 'proj_late', kbId: 'kb_late' };
    const point = (generation: string) => chunk({ project: 'proj_late', kb: 'kb_late', file: 'f', index: 0, terms: [8], generation, ready: false });
    await store.ensureCollection(LEXICAL_COLLECTION, null);
    await store.upsert(LEXICAL_COLLECTION, [point('g1')]);
    await store.markReady(LEXICAL_COLLECTION, { ...scope, fileId: 'f', generation: 'g1' });
    const found = async () => (await store.search(LEXICAL_COLLECTION, { ...scope, limit: 10, sparse: terms(8) })).map((hit) => hit.payload.generation);
    assert.deepEqual(await found(), ['g1']);
    // A run that lost its job sends its last batch after the file was published: it must not unpublish it.
    await store.upsert(LEXICAL_COLLECTION, [point('g1')]);
    assert.deepEqual(await found(), ['g1'], 'still published');
    // Re-ingestion (a new generation, the same point ids) replaces the points, unpublished until its own markReady.
    await store.upsert(LEXICAL_COLLECTION, [point('g2')]);
    assert.deepEqual(await found(), [], 'the new run is not searchable yet');
    await store.markReady(LEXICAL_COLLECTION, { ...scope, fileId: 'f', generation: 'g2' });
    assert.deepEqual(await found(), ['g2']);
  });

  it('never returns another project’s or knowledge base’s chunks', async () => {
    await store.ensureCollection(LEXICAL, null);
    await store.upsert(LEXICAL, [
      chunk({ project: 'proj_a', kb: 'kb_same', file: 'file_a', index: 0, terms: [7] }),
      chunk({ project: 'proj_b', kb: 'kb_same', file: 'file_b', index: 0, terms: [7] }),
      chunk({ project: 'proj_b', kb: 'kb_other', file: 'file_c', index: 0, terms: [7] }),
    ]);
    const hits = await store.search(LEXICAL, { projectId: 'proj_b', kbId: 'kb_same', sparse: terms(7), limit: 10 });
    assert.deepEqual(hits.map((hit) => [hit.payload.project_id, hit.payload.kb_id, hit.payload.file_id]), [['proj_b', 'kb_same', 'file_b']]);
    assert.deepEqual(await store.search(LEXICAL, { projectId: 'proj_c', kbId: 'kb_same', sparse: terms(7), limit: 10 }), []);
  });

  describe('attribute filters', () => {
    const attributes: Array<Record<string, string | number | boolean>> = [
      { dept: 'legal', year: 2021, public: true, 'doc.type': 'policy' },
      { dept: 'sales', year: 2022, public: false, 'doc.type': 'memo' },
      { dept: 'legal', year: 2023, public: false, score: 2.5 },
      { dept: 'hr', year: 2024, public: true },
      { 'say "hi"': 'unfilterable, but stored' },
    ];
    before(async () => {
      await store.ensureCollection(LEXICAL, null);
      for (const attrs of attributes) await store.ensureAttributeIndexes(LEXICAL, attrs);
      await store.upsert(LEXICAL, attributes.map((attrs, index) => chunk({ project: 'proj_f', kb: 'kb_f', index, terms: [1], attributes: attrs })));
    });

    it('indexes attribute keys by value type', async () => {
      const schema = (await collectionInfo(LEXICAL)).payload_schema;
      assert.equal(schema['attributes.dept']?.data_type, 'keyword');
      assert.equal(schema['attributes.year']?.data_type, 'float');
      assert.equal(schema['attributes.public']?.data_type, 'bool');
      assert.equal(schema['attributes."doc.type"']?.data_type, 'keyword');
    });

    const cases: Array<[OpenAIFilter, number[]]> = [
      [{ type: 'eq', key: 'dept', value: 'legal' }, [0, 2]],
      [{ type: 'eq', key: 'year', value: 2023 }, [2]],
      [{ type: 'eq', key: 'public', value: true }, [0, 3]],
      [{ type: 'eq', key: 'score', value: 2.5 }, [2]],
      [{ type: 'eq', key: 'doc.type', value: 'policy' }, [0]],
      [{ type: 'ne', key: 'dept', value: 'legal' }, [1, 3, 4]],
      [{ type: 'ne', key: 'public', value: true }, [1, 2, 4]],
      [{ type: 'gt', key: 'year', value: 2022 }, [2, 3]],
      [{ type: 'gte', key: 'year', value: 2022 }, [1, 2, 3]],
      [{ type: 'lt', key: 'year', value: 2022 }, [0]],
      [{ type: 'lte', key: 'year', value: 2022 }, [0, 1]],
      [{ type: 'in', key: 'dept', value: ['legal', 'hr'] }, [0, 2, 3]],
      [{ type: 'in', key: 'year', value: [2021, 2024] }, [0, 3]],
      [{ type: 'in', key: 'dept', value: ['hr', 7] }, [3]],
      [{ type: 'nin', key: 'dept', value: ['legal', 'hr'] }, [1, 4]],
      [{ type: 'and', filters: [{ type: 'eq', key: 'dept', value: 'legal' }, { type: 'gt', key: 'year', value: 2021 }] }, [2]],
      [{ type: 'or', filters: [{ type: 'eq', key: 'dept', value: 'hr' }, { type: 'eq', key: 'public', value: false }] }, [1, 2, 3]],
      [{ type: 'and', filters: [
        { type: 'or', filters: [{ type: 'eq', key: 'dept', value: 'sales' }, { type: 'eq', key: 'dept', value: 'hr' }] },
        { type: 'eq', key: 'public', value: true },
      ] }, [3]],
      [{ type: 'or', filters: [
        { type: 'and', filters: [{ type: 'eq', key: 'dept', value: 'legal' }, { type: 'eq', key: 'public', value: false }] },
        { type: 'eq', key: 'dept', value: 'hr' },
      ] }, [2, 3]],
    ];
    for (const [filter, expected] of cases) {
      it(`${JSON.stringify(filter)} → chunks ${expected.join(', ')}`, async () => {
        const hits = await store.search(LEXICAL, { projectId: 'proj_f', kbId: 'kb_f', sparse: terms(1), limit: 20, filter });
        assert.deepEqual(indexesOf(hits), expected);
      });
    }

    it('filters the dense candidates of a hybrid search too', async () => {
      await store.upsert(MODEL_COLLECTION, attributes.map((attrs, index) => chunk({ project: 'proj_f', kb: 'kb_f', index, terms: [1], dense: axis(index), attributes: attrs })));
      const hits = await store.search(MODEL_COLLECTION, {
        projectId: 'proj_f', kbId: 'kb_f', dense: axis(0), sparse: terms(), limit: 20, filter: { type: 'eq', key: 'dept', value: 'hr' },
      });
      assert.deepEqual(indexesOf(hits), [3]);
    });
  });

  it('counts exactly, and deletes a file’s stale generation after re-ingestion', async () => {
    const kb = { project: 'proj_d', kb: 'kb_d' };
    await store.upsert(LEXICAL, [
      ...[0, 1, 2, 3].map((index) => chunk({ ...kb, file: 'file_x', index, terms: [5], generation: 'g1' })),
      ...[0, 1].map((index) => chunk({ ...kb, file: 'file_y', index, terms: [5], generation: 'g1' })),
    ], { batchSize: 2 });
    assert.equal(await store.count(LEXICAL, { projectId: 'proj_d', kbId: 'kb_d' }), 6);
    assert.equal(await store.count(LEXICAL, { projectId: 'proj_d', kbId: 'kb_d', fileId: 'file_x' }), 4);

    // Re-ingestion wrote 2 chunks (same ids for 0 and 1) under g2; chunks 2 and 3 of g1 are stale.
    await store.upsert(LEXICAL, [0, 1].map((index) => chunk({ ...kb, file: 'file_x', index, terms: [5], generation: 'g2' })));
    await store.deleteFile(LEXICAL, { projectId: 'proj_d', kbId: 'kb_d', fileId: 'file_x', keepGeneration: 'g2' });
    const left = await store.search(LEXICAL, { projectId: 'proj_d', kbId: 'kb_d', sparse: terms(5), limit: 20 });
    assert.deepEqual(left.filter((hit) => hit.payload.file_id === 'file_x').map((hit) => [hit.payload.chunk_index, hit.payload.generation]).sort(), [[0, 'g2'], [1, 'g2']]);
    assert.equal(await store.count(LEXICAL, { projectId: 'proj_d', kbId: 'kb_d', fileId: 'file_y' }), 2, 'other files untouched');

    await store.deleteFile(LEXICAL, { projectId: 'proj_d', kbId: 'kb_d', fileId: 'file_x' });
    assert.equal(await store.count(LEXICAL, { projectId: 'proj_d', kbId: 'kb_d', fileId: 'file_x' }), 0);
    assert.equal(await store.count(LEXICAL, { projectId: 'proj_d', kbId: 'kb_d' }), 2);
  });

  it('deletes a knowledge base’s chunks in its project only', async () => {
    await store.upsert(LEXICAL, [
      chunk({ project: 'proj_k1', kb: 'kb_k', file: 'file_k1', index: 0, terms: [6] }),
      chunk({ project: 'proj_k2', kb: 'kb_k', file: 'file_k2', index: 0, terms: [6] }),
    ]);
    await store.deleteKnowledgeBase(LEXICAL, { projectId: 'proj_k1', kbId: 'kb_k' });
    assert.equal(await store.count(LEXICAL, { projectId: 'proj_k1', kbId: 'kb_k' }), 0);
    assert.equal(await store.count(LEXICAL, { projectId: 'proj_k2', kbId: 'kb_k' }), 1);
  });

  it('treats a collection that does not exist yet as empty', async () => {
    const missing = collectionName('never-used', 3);
    assert.deepEqual(await store.search(missing, { projectId: 'p', kbId: 'k', sparse: terms(1), dense: [1, 0, 0], limit: 5 }), []);
    assert.equal(await store.count(missing, { projectId: 'p', kbId: 'k' }), 0);
    await store.deleteFile(missing, { projectId: 'p', kbId: 'k', fileId: 'f' });
    await store.deleteKnowledgeBase(missing, { projectId: 'p', kbId: 'k' });
  });

  it('reports Qdrant’s own message for a bad request, as an ordinary error', async () => {
    const wrongSize = chunk({ index: 0, terms: [1], dense: [1, 2, 3] });
    await assert.rejects(store.upsert(MODEL_COLLECTION, [wrongSize]), (error: Error) =>
      !(error instanceof ServiceUnavailableError) && /store chunks in cairn_test-model_8: HTTP 400: .*dim/i.test(error.message));
  });

  it('answers health checks when Qdrant is up', async () => {
    await store.health();
  });

  it('turns an unreachable Qdrant into ServiceUnavailableError naming the vector store', async () => {
    const port = await freePort();
    const down = new QdrantChunkStore({ url: `http://127.0.0.1:${port}`, timeoutMs: 2_000 });
    const expected = (error: Error) =>
      error instanceof ServiceUnavailableError && error.status === 503
      && error.message.startsWith(`The vector store (Qdrant) is unavailable`) && !error.message.includes(String(port)) && /ECONNREFUSED/.test(error.message);
    await assert.rejects(down.health(), expected);
    await assert.rejects(down.search(LEXICAL, { projectId: 'p', kbId: 'k', sparse: terms(1), limit: 1 }), expected);
    await assert.rejects(down.ensureCollection(LEXICAL, null), expected);
    await assert.rejects(down.upsert(LEXICAL, [chunk({ index: 0, terms: [1] })]), expected);
    await assert.rejects(down.count(LEXICAL, { projectId: 'p', kbId: 'k' }), expected);
    await assert.rejects(down.deleteFile(LEXICAL, { projectId: 'p', kbId: 'k', fileId: 'f' }), expected);
  });

  it('sends a request again when it left on a keep-alive connection the server was closing', async () => {
    // Like Qdrant closing an idle connection just as a request goes out on it: the second request
    // on every connection finds the socket closed without an answer. (undici itself resends only
    // idempotent methods; searches are POSTs.)
    const requestsPerSocket = new WeakMap<object, number>();
    let dropped = 0;
    const server = createHttpServer((req, res) => {
      const seen = (requestsPerSocket.get(req.socket) ?? 0) + 1;
      requestsPerSocket.set(req.socket, seen);
      if (seen > 1) {
        // Closing time for idle connections: the others get a FIN, this one's request is lost.
        dropped += 1;
        server.closeIdleConnections();
        return void req.socket.destroy();
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ result: { points: [] }, status: 'ok', time: 0 }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as { port: number };
      const flaky = new QdrantChunkStore({ url: `http://127.0.0.1:${port}`, timeoutMs: 2_000 });
      const query = { projectId: 'p', kbId: 'k', sparse: terms(1), limit: 1 };
      for (let i = 0; i < 4; i += 1) assert.deepEqual(await flaky.search(LEXICAL, query), []);
      assert.ok(dropped >= 1, 'some search left on a reused connection and was sent again');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

