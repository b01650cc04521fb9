/**
 * Project isolation, route by route: project B's key on each of project A's resources answers 404
 * in OpenAI's envelope and changes nothing. The table below has one row per route that takes an
 * id; a check against the app's router stack makes sure no such route is missing from it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { toFile } from 'openai';
import { createApp } from '../src/app.ts';
import type { InProcessIngestQueue } from '../src/queue/in-process-queue.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { routeKey, routesOf } from './helpers/routes.ts';

const SECRET = 'The vault code of project A is 4711 and the vault is behind the painting.';

/** What project A owns; project B's own knowledge base and file are there to mix ids with. */
interface Fixture {
  fileId: string;
  kbId: string;
  batchId: string;
  otherKbId: string;
  otherFileId: string;
}

interface Case {
  /** The route as the router names it, e.g. `GET /v1/files/:fileId`. */
  route: string;
  /** What is tried, for the failure message. */
  what: string;
  path: (f: Fixture) => string;
  body?: (f: Fixture) => unknown;
}

const KB_MOUNTS = ['/v1/knowledge_bases', '/v1/vector_stores'];

/** The knowledge-base routes, mounted twice (Cairn's name and OpenAI's). */
function knowledgeBaseCases(mount: string): Case[] {
  return [
    { route: `GET ${mount}/:kbId`, what: 'retrieve A\'s knowledge base', path: (f) => `${mount}/${f.kbId}` },
    { route: `POST ${mount}/:kbId`, what: 'rename A\'s knowledge base', path: (f) => `${mount}/${f.kbId}`, body: () => ({ name: 'pwned', metadata: { owner: 'b' } }) },
    { route: `DELETE ${mount}/:kbId`, what: 'delete A\'s knowledge base', path: (f) => `${mount}/${f.kbId}` },
    { route: `GET ${mount}/:kbId/files`, what: 'list A\'s knowledge base files', path: (f) => `${mount}/${f.kbId}/files` },
    { route: `POST ${mount}/:kbId/files`, what: 'attach B\'s file to A\'s knowledge base', path: (f) => `${mount}/${f.kbId}/files`, body: (f) => ({ file_id: f.otherFileId }) },
    { route: `POST ${mount}/:kbId/files`, what: 'attach A\'s file to A\'s knowledge base', path: (f) => `${mount}/${f.kbId}/files`, body: (f) => ({ file_id: f.fileId }) },
    { route: `POST ${mount}/:kbId/files`, what: 'attach A\'s file to B\'s own knowledge base', path: (f) => `${mount}/${f.otherKbId}/files`, body: (f) => ({ file_id: f.fileId }) },
    { route: `GET ${mount}/:kbId/files/:fileId`, what: 'retrieve A\'s attached file', path: (f) => `${mount}/${f.kbId}/files/${f.fileId}` },
    { route: `GET ${mount}/:kbId/files/:fileId`, what: 'retrieve A\'s file through B\'s knowledge base', path: (f) => `${mount}/${f.otherKbId}/files/${f.fileId}` },
    { route: `POST ${mount}/:kbId/files/:fileId`, what: 'update A\'s file attributes', path: (f) => `${mount}/${f.kbId}/files/${f.fileId}`, body: () => ({ attributes: { owner: 'b' } }) },
    { route: `POST ${mount}/:kbId/files/:fileId`, what: 'update A\'s file attributes through B\'s knowledge base', path: (f) => `${mount}/${f.otherKbId}/files/${f.fileId}`, body: () => ({ attributes: { owner: 'b' } }) },
    { route: `GET ${mount}/:kbId/files/:fileId/content`, what: 'read A\'s parsed file', path: (f) => `${mount}/${f.kbId}/files/${f.fileId}/content` },
    { route: `GET ${mount}/:kbId/files/:fileId/content`, what: 'read A\'s parsed file through B\'s knowledge base', path: (f) => `${mount}/${f.otherKbId}/files/${f.fileId}/content` },
    { route: `DELETE ${mount}/:kbId/files/:fileId`, what: 'detach A\'s file', path: (f) => `${mount}/${f.kbId}/files/${f.fileId}` },
    { route: `POST ${mount}/:kbId/file_batches`, what: 'start a batch in A\'s knowledge base', path: (f) => `${mount}/${f.kbId}/file_batches`, body: (f) => ({ file_ids: [f.otherFileId] }) },
    { route: `POST ${mount}/:kbId/file_batches`, what: 'batch A\'s file into B\'s own knowledge base', path: (f) => `${mount}/${f.otherKbId}/file_batches`, body: (f) => ({ file_ids: [f.fileId] }) },
    { route: `GET ${mount}/:kbId/file_batches/:batchId`, what: 'retrieve A\'s batch', path: (f) => `${mount}/${f.kbId}/file_batches/${f.batchId}` },
    { route: `GET ${mount}/:kbId/file_batches/:batchId`, what: 'retrieve A\'s batch through B\'s knowledge base', path: (f) => `${mount}/${f.otherKbId}/file_batches/${f.batchId}` },
    { route: `POST ${mount}/:kbId/file_batches/:batchId/cancel`, what: 'cancel A\'s batch', path: (f) => `${mount}/${f.kbId}/file_batches/${f.batchId}/cancel` },
    { route: `POST ${mount}/:kbId/file_batches/:batchId/cancel`, what: 'cancel A\'s batch through B\'s knowledge base', path: (f) => `${mount}/${f.otherKbId}/file_batches/${f.batchId}/cancel` },
    { route: `GET ${mount}/:kbId/file_batches/:batchId/files`, what: 'list A\'s batch files', path: (f) => `${mount}/${f.kbId}/file_batches/${f.batchId}/files` },
    { route: `GET ${mount}/:kbId/file_batches/:batchId/files`, what: 'list A\'s batch files through B\'s knowledge base', path: (f) => `${mount}/${f.otherKbId}/file_batches/${f.batchId}/files` },
    { route: `POST ${mount}/:kbId/search`, what: 'search A\'s knowledge base', path: (f) => `${mount}/${f.kbId}/search`, body: () => ({ query: 'vault code painting' }) },
  ];
}

const CASES: Case[] = [
  { route: 'GET /v1/files/:fileId', what: 'retrieve A\'s file', path: (f) => `/v1/files/${f.fileId}` },
  { route: 'GET /v1/files/:fileId/content', what: 'download A\'s file', path: (f) => `/v1/files/${f.fileId}/content` },
  { route: 'DELETE /v1/files/:fileId', what: 'delete A\'s file', path: (f) => `/v1/files/${f.fileId}` },
  ...KB_MOUNTS.flatMap(knowledgeBaseCases),
  // Ids in bodies rather than paths.
  { route: 'POST /v1/knowledge_bases', what: 'create a knowledge base from A\'s file', path: () => '/v1/knowledge_bases', body: (f) => ({ embedding_model: 'none', file_ids: [f.fileId] }) },
  { route: 'POST /v1/vector_stores', what: 'create a vector store from A\'s file', path: () => '/v1/vector_stores', body: (f) => ({ embedding_model: 'none', file_ids: [f.fileId] }) },
  {
    route: 'POST /v1/chat/completions',
    what: 'chat grounded in A\'s knowledge base',
    path: () => '/v1/chat/completions',
    body: (f) => ({ model: 'extractive', messages: [{ role: 'user', content: 'What is the vault code?' }], knowledge_bases: [f.kbId] }),
  },
];

/** Routes with an id that is not a project's resource. */
const GLOBAL_ROUTES = new Set(['GET /v1/models/:id']);

describe('project isolation: B\'s key on A\'s resources', () => {
  let cairn: TestCairn;
  let keyB: string;
  const fixture = {} as Fixture;
  const call = async (key: string, method: string, path: string, body?: unknown) => {
    const response = await fetch(`${cairn.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, text, json: () => JSON.parse(text) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  };
  const asA = (method: string, path: string, body?: unknown) => call(cairn.key, method, path, body);

  /** Everything about A's resources that B could have changed. */
  const snapshotOfA = async () => {
    const file = (await asA('GET', `/v1/files/${fixture.fileId}`)).json();
    const content = (await asA('GET', `/v1/files/${fixture.fileId}/content`)).text;
    const kb = (await asA('GET', `/v1/knowledge_bases/${fixture.kbId}`)).json();
    const kbFiles = (await asA('GET', `/v1/knowledge_bases/${fixture.kbId}/files?order=asc`)).json();
    const attached = (await asA('GET', `/v1/knowledge_bases/${fixture.kbId}/files/${fixture.fileId}`)).json();
    const batch = (await asA('GET', `/v1/knowledge_bases/${fixture.kbId}/file_batches/${fixture.batchId}`)).json();
    const search = (await asA('POST', `/v1/knowledge_bases/${fixture.kbId}/search`, { query: 'vault code painting' })).json();
    const projectA = (await cairn.services.keys.authenticate(cairn.key))!.projectId;
    const points = await cairn.services.chunkStore.count('cairn_lexical', { projectId: projectA, kbId: fixture.kbId });
    const kbsOfB = (await call(keyB, 'GET', '/v1/knowledge_bases')).json();
    const filesOfBsKb = (await call(keyB, 'GET', `/v1/knowledge_bases/${fixture.otherKbId}/files`)).json();
    return {
      file: { id: file.id, filename: file.filename, bytes: file.bytes },
      content,
      kb: { name: kb.name, metadata: kb.metadata, file_counts: kb.file_counts, status: kb.status },
      kbFiles: kbFiles.data.map((entry: { id: string; status: string; chunk_count: number }) => [entry.id, entry.status, entry.chunk_count]),
      attached: { status: attached.status, chunk_count: attached.chunk_count, attributes: attached.attributes },
      batch: { status: batch.status, file_counts: batch.file_counts },
      search: search.data.map((hit: { file_id: string; score: number; content: Array<{ text: string }> }) => [hit.file_id, hit.score, hit.content[0]!.text]),
      points,
      kbsOfB: kbsOfB.data.map((entry: { id: string }) => entry.id),
      filesOfBsKb: filesOfBsKb.data.map((entry: { id: string }) => entry.id),
    };
  };

  before(async () => {
    cairn = await startCairn();
    keyB = await cairn.newKey('project-b');
    const client = cairn.client();
    const clientB = cairn.client({ apiKey: keyB });
    const file = await client.files.create({ file: await toFile(Buffer.from(SECRET), 'vault.txt'), purpose: 'assistants' });
    const second = await client.files.create({ file: await toFile(Buffer.from('The painting is by Vermeer.'), 'painting.txt'), purpose: 'assistants' });
    const kb = await client.vectorStores.create({ name: 'vault', metadata: { owner: 'a' }, ...({ embedding_model: 'none' } as object) });
    await client.vectorStores.files.create(kb.id, { file_id: file.id });
    const batch = await client.vectorStores.fileBatches.create(kb.id, { file_ids: [second.id] });
    await (cairn.services.queue as InProcessIngestQueue).idle();
    const otherKb = await clientB.vectorStores.create({ name: 'b', ...({ embedding_model: 'none' } as object) });
    const otherFile = await clientB.files.create({ file: await toFile(Buffer.from('B\'s own notes.'), 'notes.txt'), purpose: 'assistants' });
    Object.assign(fixture, { fileId: file.id, kbId: kb.id, batchId: batch.id, otherKbId: otherKb.id, otherFileId: otherFile.id });
  });
  after(() => cairn.stop());

  it('has a case for every route that takes an id (read from the router stack)', () => {
    const routes = routesOf(createApp(cairn.services)).map(routeKey);
    assert.ok(routes.includes('GET /v1/files/:fileId') && routes.includes('POST /v1/vector_stores/:kbId/search'), `router walk found: ${routes.join(', ')}`);
    const withId = routes.filter((route) => route.includes('/:') && !GLOBAL_ROUTES.has(route));
    const covered = new Set(CASES.map((entry) => entry.route));
    assert.deepEqual(withId.filter((route) => !covered.has(route)), [], 'routes with an id but no isolation case');
    assert.deepEqual([...covered].filter((route) => !routes.includes(route)), [], 'cases for routes the app does not serve');
  });

  it('answers 404 in OpenAI\'s envelope to every case, and A\'s resources stay as they were', async () => {
    const beforeAll = await snapshotOfA();
    assert.equal(beforeAll.content, SECRET);
    assert.equal(beforeAll.kb.file_counts.completed, 2, 'A\'s fixture is ingested');
    assert.ok(beforeAll.points >= 2 && beforeAll.search.length > 0, 'A can search its own knowledge base');

    for (const entry of CASES) {
      const [method, route] = entry.route.split(' ') as [string, string];
      const path = entry.path(fixture);
      const response = await call(keyB, method, path, entry.body?.(fixture));
      const label = `${entry.what} (${method} ${route})`;
      assert.equal(response.status, 404, `${label}: ${response.text}`);
      const { error } = response.json();
      assert.equal(typeof error?.message, 'string', `${label}: envelope`);
      assert.equal(error.type, 'invalid_request_error', label);
      assert.ok('param' in error && 'code' in error, `${label}: envelope has param and code`);
      assert.ok(!response.text.includes('4711') && !response.text.includes('vault.txt'), `${label}: nothing of A's content`);
    }

    const afterAll = await snapshotOfA();
    assert.deepEqual(afterAll, beforeAll, 'nothing of A changed, and B created nothing');
  });

  it('never lists or finds A\'s resources with B\'s key', async () => {
    const listed = (await call(keyB, 'GET', '/v1/files')).json();
    assert.deepEqual(listed.data.map((file: { id: string }) => file.id), [fixture.otherFileId]);
    for (const mount of KB_MOUNTS) {
      const kbs = (await call(keyB, 'GET', mount)).json();
      assert.deepEqual(kbs.data.map((kb: { id: string }) => kb.id), [fixture.otherKbId]);
      const search = (await call(keyB, 'POST', `${mount}/${fixture.otherKbId}/search`, { query: 'vault code painting' })).json();
      assert.deepEqual(search.data, [], 'B\'s search never returns A\'s chunks');
    }
  });
});
