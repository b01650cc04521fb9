/**
 * End-to-end with the official openai SDK: files, knowledge bases (as vector stores), ingestion on
 * the in-process runner, search, deletion and project isolation, against real Postgres and Qdrant.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import type { InProcessIngestQueue } from '../src/queue/in-process-queue.ts';
import { KbFileStore } from '../src/store/kb-files.ts';
import { longText, makePdf } from './helpers/documents.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { until } from './helpers/wait.ts';
import { createTinyEmbeddingModel } from './helpers/tiny-model.ts';

const HANDBOOK = `# Refunds

Refunds are issued within 30 days of purchase when the receipt is shown.

# Shipping

Parcels ship from Rotterdam every Tuesday and arrive within five working days.
`;

describe('knowledge bases through the openai SDK (in-process ingestion)', () => {
  let cairn: TestCairn;
  let client: OpenAI;

  before(async () => {
    const tiny = await createTinyEmbeddingModel(await mkdtemp(path.join(tmpdir(), 'cairn-tiny-')), { name: 'tiny-embedder' });
    cairn = await startCairn({
      env: { CAIRN_MODELS_DIR: tiny.modelsDir, CAIRN_EMBEDDING_MODEL: tiny.modelId, CAIRN_MAX_UPLOAD_BYTES: String(2 * 1024 * 1024) },
    });
    client = cairn.client();
  });
  after(() => cairn.stop());

  const idle = () => (cairn.services.queue as InProcessIngestQueue).idle();
  const pointsOf = (collection: string, kbId: string, fileId?: string) =>
    cairn.services.chunkStore.count(collection, { projectId: cairnProject(), kbId, fileId });
  let projectId = '';
  const cairnProject = () => projectId;

  it('uploads, lists, retrieves, downloads and deletes files like OpenAI', async () => {
    const uploaded = await client.files.create({ file: await toFile(Buffer.from(HANDBOOK), 'handbook.md'), purpose: 'assistants' });
    assert.match(uploaded.id, /^file-/);
    assert.equal(uploaded.object, 'file');
    assert.equal(uploaded.bytes, Buffer.byteLength(HANDBOOK));
    assert.equal(uploaded.filename, 'handbook.md');
    assert.equal(uploaded.status, 'processed');
    projectId = (await cairn.services.keys.authenticate(cairn.key))!.projectId;

    assert.equal((await client.files.retrieve(uploaded.id)).filename, 'handbook.md');
    const content = await client.files.content(uploaded.id);
    assert.equal(await content.text(), HANDBOOK);
    const listed = [];
    for await (const file of client.files.list({ purpose: 'assistants' })) listed.push(file.id);
    assert.ok(listed.includes(uploaded.id));

    assert.deepEqual(await client.files.delete(uploaded.id), { id: uploaded.id, object: 'file', deleted: true });
    await assert.rejects(client.files.retrieve(uploaded.id), OpenAI.NotFoundError);
  });

  it('paginates file lists with after and has_more', async () => {
    const ids = [];
    for (let i = 0; i < 3; i += 1) {
      ids.push((await client.files.create({ file: await toFile(Buffer.from(`note ${i}`), `n${i}.txt`), purpose: 'user_data' })).id);
    }
    const first = await client.files.list({ purpose: 'user_data', limit: 2, order: 'asc' });
    assert.deepEqual(first.data.map((file) => file.id), ids.slice(0, 2));
    assert.equal(first.has_more, true);
    const all = [];
    for await (const file of client.files.list({ purpose: 'user_data', limit: 2, order: 'asc' })) all.push(file.id);
    assert.deepEqual(all, ids);
    const before = await fetch(`${cairn.baseURL}/files?purpose=user_data&order=asc&limit=1&before=${ids[2]}`, { headers: { authorization: `Bearer ${cairn.key}` } });
    assert.deepEqual(((await before.json()) as { data: Array<{ id: string }> }).data.map((file) => file.id), [ids[1]], 'the page right before the cursor');
  });

  it('keeps paginating when the client deletes what it lists (the page after a deleted object)', async () => {
    const cleaner = cairn.client({ apiKey: await cairn.newKey('clean-up') });
    const upload = async (i: number) => (await cleaner.files.create({ file: await toFile(Buffer.from(`scrap ${i}`), `s${i}.txt`), purpose: 'assistants' })).id;
    const files = [];
    for (let i = 0; i < 7; i += 1) files.push(await upload(i));
    const kb = await cleaner.vectorStores.create({ name: 'scraps', file_ids: files.slice(0, 5), ...({ embedding_model: 'none' } as object) });
    const spare = await cleaner.vectorStores.create({ name: 'spare', ...({ embedding_model: 'none' } as object) });

    const detached = [];
    for await (const file of cleaner.vectorStores.files.list(kb.id, { limit: 2 })) {
      await cleaner.vectorStores.files.delete(file.id, { vector_store_id: kb.id });
      detached.push(file.id);
    }
    assert.deepEqual(detached.sort(), files.slice(0, 5).sort());
    const deleted = [];
    for await (const file of cleaner.files.list({ limit: 3 })) {
      await cleaner.files.delete(file.id);
      deleted.push(file.id);
    }
    assert.deepEqual(deleted.sort(), [...files].sort());
    const stores = [];
    for await (const store of cleaner.vectorStores.list({ limit: 1 })) {
      await cleaner.vectorStores.delete(store.id);
      stores.push(store.id);
    }
    assert.deepEqual(stores.sort(), [kb.id, spare.id].sort());
    assert.equal((await cleaner.files.list()).data.length, 0);
  });

  it('refuses an after/before cursor that names no object of the list with 400 naming the parameter', async () => {
    const lister = cairn.client({ apiKey: await cairn.newKey('cursors') });
    const file = await lister.files.create({ file: await toFile(Buffer.from('cursor'), 'cursor.txt'), purpose: 'assistants' });
    const kb = await lister.vectorStores.create({ name: 'cursors', file_ids: [file.id], ...({ embedding_model: 'none' } as object) });
    const unknownCursor = (param: string) => (error: unknown) =>
      error instanceof OpenAI.BadRequestError && error.type === 'invalid_request_error' && error.param === param && new RegExp(`'${param}'`).test(error.message);
    await assert.rejects(lister.files.list({ after: 'file-doesnotexist' }), unknownCursor('after'));
    await assert.rejects(lister.files.list({ before: 'file-doesnotexist' } as object), unknownCursor('before'));
    await assert.rejects(lister.vectorStores.list({ after: 'kb_doesnotexist' }), unknownCursor('after'));
    await assert.rejects(lister.vectorStores.files.list(kb.id, { before: 'file-doesnotexist' }), unknownCursor('before'));
    // Another project's object is unknown here too.
    await assert.rejects(client.files.list({ after: file.id }), unknownCursor('after'));
    // A known cursor at the end of the list is an empty page, not an error; a deleted one stays a valid cursor.
    assert.deepEqual((await lister.files.list({ after: file.id })).data, []);
    await lister.vectorStores.delete(kb.id);
    await lister.files.delete(file.id);
    assert.deepEqual((await lister.files.list({ after: file.id })).data, []);
    assert.deepEqual((await lister.vectorStores.list({ after: kb.id })).data, []);
  });

  it('sanitises filenames and refuses oversize uploads with 413', async () => {
    const sneaky = await client.files.create({ file: await toFile(Buffer.from('x'), '../../etc/pass\u202ewd'), purpose: 'assistants' });
    assert.equal(sneaky.filename, 'passwd');
    // Names of directories, not files: refused, naming the filename rather than calling the file missing.
    for (const name of ['.', '..', 'notes/..']) {
      await assert.rejects(
        client.files.create({ file: await toFile(Buffer.from('x'), name), purpose: 'assistants' }),
        (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'file' && /filename '.*' names a directory/.test(error.message),
        name,
      );
    }
    await assert.rejects(
      client.files.create({ file: await toFile(Buffer.alloc(3 * 1024 * 1024, 97), 'big.txt'), purpose: 'assistants' }),
      (error: unknown) => error instanceof OpenAI.APIError && error.status === 413,
    );
    await assert.rejects(
      client.files.create({ file: await toFile(Buffer.from('x'), 'a.txt'), purpose: 'nonsense' as 'assistants' }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'purpose',
    );
  });

  it('ingests a Markdown file into a lexical knowledge base and finds it by search', async () => {
    const kb = await client.vectorStores.create({ name: 'handbook', ...({ embedding_model: 'none' } as object) });
    assert.match(kb.id, /^kb_/);
    assert.equal(kb.object, 'vector_store');
    assert.equal((kb as unknown as { embedding_model: string }).embedding_model, 'none');
    const file = await client.vectorStores.files.uploadAndPoll(kb.id, await toFile(Buffer.from(HANDBOOK), 'handbook.md'));
    assert.equal(file.status, 'completed');
    assert.equal(file.last_error, null);
    assert.equal(file.vector_store_id, kb.id);
    const chunkCount = (file as unknown as { chunk_count: number }).chunk_count;
    assert.ok(chunkCount >= 1);
    assert.equal(await pointsOf('cairn_lexical', kb.id, file.id), chunkCount);

    const results = await client.vectorStores.search(kb.id, { query: 'When do parcels arrive from Rotterdam?' });
    assert.equal(results.data[0]!.filename, 'handbook.md');
    assert.match(results.data[0]!.content[0]!.text, /Rotterdam/);
    assert.ok(results.data[0]!.score > 0 && results.data[0]!.score <= 1);
    // OpenAI's ranker names are accepted (one ranking here); anything else is refused, naming the parameter.
    for (const ranker of ['auto', 'default-2024-11-15'] as const) {
      const ranked = await client.vectorStores.search(kb.id, { query: 'parcels from Rotterdam', ranking_options: { ranker } });
      assert.equal(ranked.data[0]!.filename, 'handbook.md');
    }
    await assert.rejects(
      client.vectorStores.search(kb.id, { query: 'parcels', ranking_options: { ranker: 'bogus' as 'auto' } }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'ranking_options.ranker' && /auto/.test(error.message),
    );

    const retrieved = await client.vectorStores.retrieve(kb.id);
    assert.deepEqual(retrieved.file_counts, { in_progress: 0, completed: 1, failed: 0, cancelled: 0, total: 1 });
    assert.ok(retrieved.usage_bytes > 0);
    assert.equal(retrieved.status, 'completed');
  });

  it('ingests a PDF into a hybrid knowledge base with the default (tiny) embedding model, keeping pages', async () => {
    const kb = await client.vectorStores.create({ name: 'manuals' });
    assert.equal((kb as unknown as { embedding_model: string }).embedding_model, 'tiny-embedder');
    const pdf = await makePdf(['The boiler must be serviced every spring.', 'Emergency exits are on the north side of the hall.']);
    const file = await client.vectorStores.files.uploadAndPoll(kb.id, await toFile(pdf, 'manual.pdf'));
    assert.equal(file.status, 'completed', JSON.stringify(file.last_error));
    const response = await fetch(`${cairn.baseURL}/knowledge_bases/${kb.id}/search`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cairn.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'where are the emergency exits', max_num_results: 1 }),
    });
    const body = (await response.json()) as { object: string; data: Array<{ content: Array<{ text: string }> }> };
    assert.equal(body.object, 'knowledge_base.search_results.page');
    assert.match(body.data[0]!.content[0]!.text, /Emergency exits/);
  });

  it('runs file batches, failing a bad file with last_error and keeping the rest', async () => {
    const kb = await client.vectorStores.create({ name: 'batch', ...({ embedding_model: 'none' } as object) });
    const batch = await client.vectorStores.fileBatches.uploadAndPoll(kb.id, {
      files: [
        await toFile(Buffer.from('Cats purr when they are content.'), 'cats.txt'),
        await toFile(Buffer.from(''), 'empty.txt'),
        await toFile(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]), 'image.txt'),
        await toFile(Buffer.from('Dogs wag their tails.'), 'dogs.txt'),
      ],
    });
    assert.equal(batch.object, 'vector_store.files_batch');
    assert.deepEqual(batch.file_counts, { in_progress: 0, completed: 2, failed: 2, cancelled: 0, total: 4 });
    const failed = await client.vectorStores.files.list(kb.id, { filter: 'failed' });
    const errors = failed.data.map((file) => file.last_error?.code).sort();
    assert.deepEqual(errors, ['invalid_file', 'unsupported_file']);
    const batchFiles = await client.vectorStores.fileBatches.listFiles(batch.id, { vector_store_id: kb.id });
    assert.equal(batchFiles.data.length, 4);
    const search = await client.vectorStores.search(kb.id, { query: 'what do dogs do' });
    assert.match(search.data[0]!.content[0]!.text, /Dogs wag/);
  });

  it('takes a batch of files each with its own attributes and chunking, and refuses file_ids with files', async () => {
    const kb = await client.vectorStores.create({ name: 'per-file', ...({ embedding_model: 'none' } as object) });
    const upload = async (text: string, name: string) => client.files.create({ file: await toFile(Buffer.from(text), name), purpose: 'assistants' });
    const [north, south] = await Promise.all([upload('Polar bears roam the north.', 'north.txt'), upload('Penguins nest in the south.', 'south.txt')]);
    const staticChunks = { type: 'static' as const, static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 0 } };
    const batch = await client.vectorStores.fileBatches.createAndPoll(kb.id, {
      files: [
        { file_id: north.id, attributes: { pole: 'north' }, chunking_strategy: staticChunks },
        { file_id: south.id, attributes: { pole: 'south' } },
      ],
    });
    assert.deepEqual(batch.file_counts, { in_progress: 0, completed: 2, failed: 0, cancelled: 0, total: 2 });
    const northFile = await client.vectorStores.files.retrieve(north.id, { vector_store_id: kb.id });
    assert.deepEqual(northFile.attributes, { pole: 'north' });
    assert.deepEqual(northFile.chunking_strategy, staticChunks);
    const onlySouth = await client.vectorStores.search(kb.id, { query: 'where do penguins and polar bears live', filters: { type: 'eq', key: 'pole', value: 'south' } });
    assert.deepEqual(onlySouth.data.map((hit) => hit.filename), ['south.txt']);
    const twice = await client.vectorStores.create({ name: 'twice', file_ids: [north.id, north.id], ...({ embedding_model: 'none' } as object) });
    assert.equal(twice.file_counts.total, 1, 'a file listed twice is attached once');
    await assert.rejects(
      client.vectorStores.fileBatches.create(kb.id, { file_ids: [north.id], files: [{ file_id: south.id }] }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'file_ids' && /exactly one of/.test(error.message),
    );
  });

  it('filters search results on file attributes', async () => {
    const kb = await client.vectorStores.create({ name: 'attrs', ...({ embedding_model: 'none' } as object) });
    const legal = await client.files.create({ file: await toFile(Buffer.from('The contract renews every year in March.'), 'legal.txt'), purpose: 'assistants' });
    const sales = await client.files.create({ file: await toFile(Buffer.from('The sales contract target is ten deals a year.'), 'sales.txt'), purpose: 'assistants' });
    await client.vectorStores.files.createAndPoll(kb.id, { file_id: legal.id, attributes: { dept: 'legal', year: 2024 } });
    await client.vectorStores.files.createAndPoll(kb.id, { file_id: sales.id, attributes: { dept: 'sales', year: 2025 } });
    const onlyLegal = await client.vectorStores.search(kb.id, { query: 'contract year', filters: { type: 'eq', key: 'dept', value: 'legal' } });
    assert.deepEqual(onlyLegal.data.map((hit) => hit.filename), ['legal.txt']);
    assert.deepEqual(onlyLegal.data[0]!.attributes, { dept: 'legal', year: 2024 });
    const recent = await client.vectorStores.search(kb.id, { query: 'contract year', filters: { type: 'gte', key: 'year', value: 2025 } });
    assert.deepEqual(recent.data.map((hit) => hit.filename), ['sales.txt']);
    const both = await client.vectorStores.search(kb.id, {
      query: 'contract',
      filters: { type: 'or', filters: [{ type: 'eq', key: 'dept', value: 'legal' }, { type: 'eq', key: 'dept', value: 'sales' }] },
    });
    assert.equal(both.data.length, 2);
  });

  it('removes a file and its chunks from every knowledge base when the file is deleted', async () => {
    const file = await client.files.create({ file: await toFile(Buffer.from(HANDBOOK), 'shared.md'), purpose: 'assistants' });
    const kbs = await Promise.all([1, 2].map((n) => client.vectorStores.create({ name: `shared-${n}`, ...({ embedding_model: 'none' } as object) })));
    for (const kb of kbs) await client.vectorStores.files.createAndPoll(kb.id, { file_id: file.id });
    for (const kb of kbs) assert.ok((await pointsOf('cairn_lexical', kb.id, file.id)) > 0);
    await client.files.delete(file.id);
    for (const kb of kbs) {
      assert.equal(await pointsOf('cairn_lexical', kb.id, file.id), 0);
      await assert.rejects(client.vectorStores.files.retrieve(file.id, { vector_store_id: kb.id }), OpenAI.NotFoundError);
      assert.equal((await client.vectorStores.retrieve(kb.id)).file_counts.total, 0);
    }
  });

  it('cancels ingestion when the file is detached mid-job and leaves no points behind', async () => {
    const kb = await client.vectorStores.create({ name: 'cancel', ...({ embedding_model: 'none' } as object) });
    const big = await client.files.create({ file: await toFile(Buffer.from(longText(400)), 'big.txt'), purpose: 'assistants' });
    await client.vectorStores.files.create(kb.id, { file_id: big.id });
    // Wait until the job has written part of the file: the point of the test is a delete mid-write.
    // Polled with a deadline, not a count of event-loop turns: a loaded machine may take long to start the job.
    await until('the job to write its first points', async () => (await pointsOf('cairn_lexical', kb.id, big.id)) > 0);
    await client.vectorStores.files.delete(big.id, { vector_store_id: kb.id });
    await idle();
    assert.equal(await pointsOf('cairn_lexical', kb.id, big.id), 0);
  });

  it('resumes files left in progress (as after a restart) when ingestion resumes', async () => {
    const kb = await client.vectorStores.create({ name: 'resume', ...({ embedding_model: 'none' } as object) });
    const file = await client.files.create({ file: await toFile(Buffer.from('Tulips bloom in April.'), 'tulips.txt'), purpose: 'assistants' });
    // Attached in the database only, with no job: what a crash between attach and run leaves behind.
    await new KbFileStore(cairn.services.db).attach(projectId, kb.id, [{ fileId: file.id, attributes: {}, chunkingStrategy: { type: 'auto' } }]);
    assert.equal((await client.vectorStores.files.retrieve(file.id, { vector_store_id: kb.id })).status, 'in_progress');
    assert.ok((await cairn.services.resumeIngestion()) >= 1);
    await idle();
    assert.equal((await client.vectorStores.files.retrieve(file.id, { vector_store_id: kb.id })).status, 'completed');
    assert.ok((await pointsOf('cairn_lexical', kb.id, file.id)) > 0);
  });

  it('deletes a knowledge base with its chunks', async () => {
    const kb = await client.vectorStores.create({ name: 'doomed', ...({ embedding_model: 'none' } as object) });
    await client.vectorStores.files.uploadAndPoll(kb.id, await toFile(Buffer.from(HANDBOOK), 'doomed.md'));
    assert.ok((await pointsOf('cairn_lexical', kb.id)) > 0);
    const deleted = await client.vectorStores.delete(kb.id);
    assert.deepEqual(deleted, { id: kb.id, object: 'vector_store.deleted', deleted: true });
    assert.equal(await pointsOf('cairn_lexical', kb.id), 0);
    await assert.rejects(client.vectorStores.retrieve(kb.id), OpenAI.NotFoundError);
  });

  it('refuses an explicitly requested embedding model that cannot be loaded, naming the fix', async () => {
    await assert.rejects(
      client.vectorStores.create({ name: 'x', ...({ embedding_model: 'no-such-model' } as object) }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'embedding_model',
    );
  });

  it('keeps projects apart: another key sees, searches, attaches and deletes nothing of this project', async () => {
    const kb = await client.vectorStores.create({ name: 'private', ...({ embedding_model: 'none' } as object) });
    const file = await client.vectorStores.files.uploadAndPoll(kb.id, await toFile(Buffer.from('The vault code is 4711.'), 'secret.txt'));
    const other = cairn.client({ apiKey: await cairn.newKey('project-b') });
    const otherKb = await other.vectorStores.create({ name: 'private', ...({ embedding_model: 'none' } as object) });
    const denied = (error: unknown) => error instanceof OpenAI.NotFoundError;
    await assert.rejects(other.files.retrieve(file.id), denied);
    await assert.rejects(other.files.content(file.id), denied);
    await assert.rejects(other.files.delete(file.id), denied);
    await assert.rejects(other.vectorStores.retrieve(kb.id), denied);
    await assert.rejects(other.vectorStores.search(kb.id, { query: 'vault code' }), denied);
    await assert.rejects(other.vectorStores.files.list(kb.id), denied);
    await assert.rejects(other.vectorStores.files.create(otherKb.id, { file_id: file.id }), denied);
    await assert.rejects(other.vectorStores.files.delete(file.id, { vector_store_id: kb.id }), denied);
    await assert.rejects(other.vectorStores.delete(kb.id), denied);
    const otherSearch = await other.vectorStores.search(otherKb.id, { query: 'vault code' });
    assert.equal(otherSearch.data.length, 0, 'a search never returns another project\'s chunks');
    assert.equal((await client.vectorStores.retrieve(kb.id)).file_counts.completed, 1, 'nothing changed');
  });
});
