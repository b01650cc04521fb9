/**
 * expires_after, driven by the openai SDK: vector stores expire `days` after their last use and
 * stay listed as `expired`; files expire `seconds` after upload and then answer 404. The sweeper
 * (triggered directly here, its timer off) reclaims chunks, attachments and blobs; its claims live
 * in the database, so concurrent sweepers split the work and a dead one's claim is taken over.
 * Time is a clock the test moves.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import type { InProcessIngestQueue } from '../src/queue/in-process-queue.ts';
import { KnowledgeBaseStore } from '../src/store/knowledge-bases.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// The same SQL (migration 007, the claims) runs on both databases.
for (const database of ['PostgreSQL', 'PGlite'] as const) describe(`expires_after on vector stores and files (${database})`, () => {
  let cairn: TestCairn;
  let client: OpenAI;
  let projectId: string;
  let offsetMs = 0;
  const clock = () => new Date(Date.now() + offsetMs);
  const idle = () => (cairn.services.queue as InProcessIngestQueue).idle();
  const points = (kbId: string) => cairn.services.chunkStore.count('cairn_lexical', { projectId, kbId });

  before(async () => {
    cairn = await startCairn({ clock, pglite: database === 'PGlite', env: { CAIRN_EXPIRY_SWEEP_INTERVAL_MS: '0' } });
    client = cairn.client();
    projectId = (await cairn.services.keys.authenticate(cairn.key))!.projectId;
  });
  after(() => cairn.stop());

  async function storeWithFile(days: number, text = 'The lighthouse keeper lit the lamp at dusk.') {
    const file = await client.files.create({ file: await toFile(Buffer.from(text), 'keeper.txt'), purpose: 'assistants' });
    const store = await client.vectorStores.create({
      name: 'expiring',
      expires_after: { anchor: 'last_active_at', days },
      ...({ embedding_model: 'none' } as object),
    });
    await client.vectorStores.files.create(store.id, { file_id: file.id });
    await idle();
    return { store, file };
  }

  it('keeps expires_after, computes expires_at from last_active_at, and moves it on use', async () => {
    offsetMs = 0;
    const { store } = await storeWithFile(2);
    assert.deepEqual(store.expires_after, { anchor: 'last_active_at', days: 2 });
    assert.equal(store.expires_at, store.last_active_at! + 2 * 86_400);
    assert.equal(store.status, 'completed');

    offsetMs = 30 * HOUR;
    assert.ok((await client.vectorStores.search(store.id, { query: 'lighthouse' })).data.length > 0, 'searchable before expiry');
    const used = await client.vectorStores.retrieve(store.id);
    assert.ok(used.last_active_at! >= store.last_active_at! + 30 * 3_600 - 5, 'the search moved last_active_at');
    assert.equal(used.expires_at, used.last_active_at! + 2 * 86_400);

    // 60 h after creation, but only 30 h after the search: still active.
    offsetMs = 60 * HOUR;
    assert.equal((await client.vectorStores.retrieve(store.id)).status, 'completed');
    const cleared = await client.vectorStores.update(store.id, { expires_after: null });
    assert.equal(cleared.expires_after, null);
    assert.equal(cleared.expires_at, null);
  });

  it('marks an expired store `expired`, keeps it listed, refuses to use it, and the sweep reclaims its chunks', async () => {
    offsetMs = 0;
    const { store, file } = await storeWithFile(1);
    const keep = await storeWithFile(7);
    assert.ok((await points(store.id)) > 0);

    offsetMs = 25 * HOUR;
    const expired = await client.vectorStores.retrieve(store.id);
    assert.equal(expired.status, 'expired');
    const listed = [];
    for await (const entry of client.vectorStores.list()) listed.push([entry.id, entry.status]);
    assert.ok(listed.some(([id, status]) => id === store.id && status === 'expired'), 'still listed, as OpenAI');
    const refusedAsExpired = (error: unknown) => error instanceof OpenAI.BadRequestError && error.code === 'expired';
    await assert.rejects(client.vectorStores.search(store.id, { query: 'lighthouse' }), refusedAsExpired);
    await assert.rejects(client.vectorStores.files.create(store.id, { file_id: file.id }), refusedAsExpired);
    await assert.rejects(
      client.chat.completions.create({ model: 'extractive', messages: [{ role: 'user', content: 'lighthouse?' }], ...({ knowledge_bases: [store.id] } as object) }),
      refusedAsExpired,
    );
    // Use does not bring it back.
    assert.equal((await client.vectorStores.retrieve(store.id)).last_active_at, expired.last_active_at);
    assert.ok((await points(store.id)) > 0, 'nothing reclaimed before a sweep');

    const swept = await cairn.services.expirySweeper.sweep();
    assert.equal(swept.knowledgeBases, 1);
    assert.equal(await points(store.id), 0, 'its chunks are gone from Qdrant');
    const after = await client.vectorStores.retrieve(store.id);
    assert.equal(after.status, 'expired');
    assert.equal(after.file_counts.total, 0);
    assert.equal(after.usage_bytes, 0);
    assert.equal((await cairn.services.expirySweeper.sweep()).knowledgeBases, 0, 'reclaimed once');

    // The other store, and the file itself, are untouched.
    assert.equal((await client.vectorStores.retrieve(keep.store.id)).status, 'completed');
    assert.ok((await points(keep.store.id)) > 0);
    assert.equal((await client.files.retrieve(file.id)).id, file.id);
    await client.vectorStores.delete(store.id);
  });

  it('expires files after `seconds`: 404 everywhere, then the sweep deletes the row, the blob and the chunks', async () => {
    offsetMs = 0;
    const text = 'Expiring notes about the harbour master.';
    const file = await client.files.create({
      file: await toFile(Buffer.from(text), 'notes.txt'),
      purpose: 'assistants',
      expires_after: { anchor: 'created_at', seconds: 3_600 },
    });
    assert.equal(file.expires_at, file.created_at + 3_600);
    const lasting = await client.files.create({ file: await toFile(Buffer.from('Lasting notes.'), 'lasting.txt'), purpose: 'assistants' });
    assert.equal(lasting.expires_at, null);
    const store = await client.vectorStores.create({ name: 'harbour', file_ids: [file.id, lasting.id], ...({ embedding_model: 'none' } as object) });
    await idle();
    assert.equal((await client.files.retrieve(file.id)).id, file.id);
    assert.ok((await client.vectorStores.search(store.id, { query: 'harbour master' })).data.some((hit) => hit.file_id === file.id));
    const { sha256 } = (await cairn.services.files.get(projectId, file.id));

    offsetMs = 2 * HOUR;
    await assert.rejects(client.files.retrieve(file.id), OpenAI.NotFoundError);
    await assert.rejects(client.files.content(file.id), OpenAI.NotFoundError);
    const listed = [];
    for await (const entry of client.files.list()) listed.push(entry.id);
    assert.ok(!listed.includes(file.id) && listed.includes(lasting.id));
    await assert.rejects(client.vectorStores.files.create(store.id, { file_id: file.id }), OpenAI.NotFoundError);

    const swept = await cairn.services.expirySweeper.sweep();
    assert.equal(swept.files, 1);
    await assert.rejects(cairn.services.blobs.read(sha256), 'the blob is deleted');
    const attached = [];
    for await (const entry of client.vectorStores.files.list(store.id)) attached.push(entry.id);
    assert.deepEqual(attached, [lasting.id], 'detached from the store');
    assert.ok(!(await client.vectorStores.search(store.id, { query: 'harbour master' })).data.some((hit) => hit.file_id === file.id), 'its chunks are gone');
    assert.equal(await cairn.services.chunkStore.count('cairn_lexical', { projectId, kbId: store.id, fileId: file.id }), 0);
    assert.equal((await client.files.retrieve(lasting.id)).id, lasting.id);
  });

  it('splits expired objects between concurrent sweepers, and takes over the claim of one that died', async () => {
    offsetMs = 0;
    const stores = [await storeWithFile(1), await storeWithFile(1), await storeWithFile(1)].map((entry) => entry.store.id);
    offsetMs = 2 * DAY;
    // Two processes' stores over the same database.
    const first = new KnowledgeBaseStore(cairn.services.db, clock);
    const second = new KnowledgeBaseStore(cairn.services.db, clock);
    const [a, b] = await Promise.all([first.claimExpired(2, 60_000), second.claimExpired(2, 60_000)]);
    const claimed = [...a, ...b].map((kb) => kb.id).filter((id) => stores.includes(id));
    assert.deepEqual([...new Set(claimed)].sort(), [...stores].sort(), 'every expired store claimed');
    assert.equal(claimed.length, stores.length, 'none claimed twice');

    // Those sweepers "die" before reclaiming: nothing is claimable until their lease runs out…
    assert.equal((await first.claimExpired(10, 60_000)).filter((kb) => stores.includes(kb.id)).length, 0);
    assert.equal((await cairn.services.expirySweeper.sweep()).knowledgeBases, 0);
    // …then the next sweep (this process, or one started after a restart) finishes the job.
    offsetMs += 2 * 60_000;
    assert.ok((await cairn.services.expirySweeper.sweep()).knowledgeBases >= stores.length);
    for (const id of stores) assert.equal(await points(id), 0);
  });

  it('validates expires_after like OpenAI', async () => {
    await assert.rejects(
      client.vectorStores.create({ expires_after: { anchor: 'last_active_at', days: 0 } }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === 'expires_after.days',
    );
    await assert.rejects(
      client.files.create({ file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'assistants', expires_after: { anchor: 'created_at', seconds: 10 } }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && String(error.param).startsWith('expires_after'),
    );
  });
});
