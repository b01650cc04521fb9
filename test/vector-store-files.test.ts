/**
 * The vector-store file routes the openai SDK has beyond attach/list/detach:
 * `vectorStores.files.content` (the parsed text as indexed) and `vectorStores.files.update`
 * (attributes replaced in the row and on the Qdrant points, no re-embedding).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import type { InProcessIngestQueue } from '../src/queue/in-process-queue.ts';
import { longText } from './helpers/documents.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';

describe('vector-store files: content and update through the openai SDK', () => {
  let cairn: TestCairn;
  let client: OpenAI;
  const idle = () => (cairn.services.queue as InProcessIngestQueue).idle();

  before(async () => {
    cairn = await startCairn({ pglite: true });
    client = cairn.client();
  });
  after(() => cairn.stop());

  async function storeWith(files: Array<{ name: string; text: string; attributes?: Record<string, string | number | boolean> }>, chunking?: object) {
    const store = await client.vectorStores.create({ name: 'docs', ...({ embedding_model: 'none' } as object) });
    const ids: string[] = [];
    for (const file of files) {
      const uploaded = await client.files.create({ file: await toFile(Buffer.from(file.text), file.name), purpose: 'assistants' });
      await client.vectorStores.files.create(store.id, { file_id: uploaded.id, attributes: file.attributes, ...(chunking ? { chunking_strategy: chunking as never } : {}) });
      ids.push(uploaded.id);
    }
    await idle();
    return { store, ids };
  }

  it('returns the parsed text of a file in OpenAI\'s page shape, overlapping chunks stitched back together', async () => {
    const text = longText(30);
    const { store, ids } = await storeWith([{ name: 'long.txt', text }], { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 40 } });
    const file = await client.vectorStores.files.retrieve(ids[0]!, { vector_store_id: store.id });
    assert.ok((file as unknown as { chunk_count: number }).chunk_count > 3, 'several overlapping chunks');

    const page = await client.vectorStores.files.content(ids[0]!, { vector_store_id: store.id });
    const parts = [];
    for await (const part of page) parts.push(part);
    assert.ok(parts.length >= 1 && parts.every((part) => part.type === 'text'));
    // Chunk boundaries fall on whitespace; joined, the parts are the document with nothing doubled.
    assert.equal(parts.map((part) => part.text).join(' ').replace(/\s+/g, ' ').trim(), text.replace(/\s+/g, ' ').trim());

    const raw = await fetch(`${cairn.baseURL}/knowledge_bases/${store.id}/files/${ids[0]}/content`, { headers: { authorization: `Bearer ${cairn.key}` } });
    const body = (await raw.json()) as { object: string; has_more: boolean };
    assert.equal(body.object, 'knowledge_base.file_content.page');
    assert.equal(body.has_more, false);
  });

  it('404s for a file that is not in the store', async () => {
    const { store } = await storeWith([{ name: 'a.txt', text: 'alpha beta gamma' }]);
    const loose = await client.files.create({ file: await toFile(Buffer.from('not attached'), 'loose.txt'), purpose: 'assistants' });
    await assert.rejects(client.vectorStores.files.content(loose.id, { vector_store_id: store.id }), OpenAI.NotFoundError);
    await assert.rejects(client.vectorStores.files.update(loose.id, { vector_store_id: store.id, attributes: { a: 1 } }), OpenAI.NotFoundError);
  });

  it('updates attributes so that filters see the new values at once, without re-ingesting', async () => {
    const { store, ids } = await storeWith([
      { name: 'refunds.txt', text: 'Refunds are issued within 30 days.', attributes: { dept: 'sales', year: 2023 } },
      { name: 'shipping.txt', text: 'Refunds for parcels are handled by shipping.', attributes: { dept: 'logistics', year: 2023 } },
    ]);
    const search = async (filters: object) =>
      (await client.vectorStores.search(store.id, { query: 'refunds', filters: filters as never })).data.map((hit) => hit.file_id).sort();
    assert.deepEqual(await search({ type: 'eq', key: 'dept', value: 'legal' }), []);
    const before = await client.vectorStores.files.retrieve(ids[0]!, { vector_store_id: store.id });

    const updated = await client.vectorStores.files.update(ids[0]!, { vector_store_id: store.id, attributes: { dept: 'legal', reviewed: true } });
    assert.deepEqual(updated.attributes, { dept: 'legal', reviewed: true }, 'replaced, not merged');
    assert.equal(updated.status, 'completed');

    // No wait, no ingestion: the very next search filters on the new values.
    assert.deepEqual(await search({ type: 'eq', key: 'dept', value: 'legal' }), [ids[0]]);
    assert.deepEqual(await search({ type: 'eq', key: 'reviewed', value: true }), [ids[0]]);
    assert.deepEqual(await search({ type: 'eq', key: 'year', value: 2023 }), [ids[1]], 'the old year is gone from the updated file');
    const hit = (await client.vectorStores.search(store.id, { query: 'refunds 30 days', filters: { type: 'eq', key: 'dept', value: 'legal' } })).data[0]!;
    assert.deepEqual(hit.attributes, { dept: 'legal', reviewed: true });
    const after = await client.vectorStores.files.retrieve(ids[0]!, { vector_store_id: store.id });
    assert.equal((after as unknown as { chunk_count: number }).chunk_count, (before as unknown as { chunk_count: number }).chunk_count);

    const cleared = await client.vectorStores.files.update(ids[0]!, { vector_store_id: store.id, attributes: null });
    assert.deepEqual(cleared.attributes, {});
    assert.deepEqual(await search({ type: 'eq', key: 'dept', value: 'legal' }), []);
    await assert.rejects(
      client.vectorStores.files.update(ids[0]!, { vector_store_id: store.id, attributes: { ['k'.repeat(65)]: 1 } }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && String(error.param).startsWith('attributes'),
    );
  });
});
