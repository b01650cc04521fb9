/** Knowledge-base behaviour around models and re-ingestion, and the `cairn ingest` command. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import OpenAI, { toFile } from 'openai';
import { longText } from './helpers/documents.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';

const run = promisify(execFile);
const MAIN = path.resolve(import.meta.dirname, '../src/main.ts');

describe('knowledge-base lifecycle', () => {
  let cairn: TestCairn;
  let client: OpenAI;
  let projectId: string;

  before(async () => {
    // The default model is a hub model, and downloads are off: it cannot load on this machine.
    cairn = await startCairn({ pglite: true, env: { CAIRN_EMBEDDING_MODEL: 'Xenova/bge-small-en-v1.5', CAIRN_ALLOW_MODEL_DOWNLOAD: 'false' } });
    client = cairn.client();
    projectId = (await cairn.services.keys.authenticate(cairn.key))!.projectId;
  });
  after(() => cairn.stop());

  it('falls back to lexical-only, visibly, when the default embedding model cannot be loaded', async () => {
    const kb = await client.vectorStores.create({ name: 'fallback' });
    const created = kb as unknown as { embedding_model: string; warning?: string };
    assert.equal(created.embedding_model, 'none');
    assert.match(created.warning ?? '', /default embedding model 'Xenova\/bge-small-en-v1\.5' is unavailable, so this knowledge base is lexical-only/);
    assert.match(created.warning ?? '', /downloads are disabled/, 'the warning carries the cause');
    const warnings = cairn.logs.lines.filter((line) => line.includes('default embedding model unavailable'));
    assert.equal(warnings.length, 1, 'one clear warning');
    const creations = cairn.logs.lines.filter((line) => line.includes('knowledge base created lexical-only'));
    assert.equal(creations.length, 1);
    assert.match(creations[0]!, new RegExp(`"kbId":"${kb.id}"`));
    const explicitNone = await client.vectorStores.create({ name: 'asked-for-none', ...({ embedding_model: 'none' } as object) });
    assert.equal((explicitNone as unknown as { warning?: string }).warning, undefined, 'no warning when lexical-only was asked for');
    const file = await client.vectorStores.files.uploadAndPoll(kb.id, await toFile(Buffer.from('Lexical search still works.'), 'a.txt'));
    assert.equal(file.status, 'completed');
    await assert.rejects(
      client.vectorStores.create({ name: 'explicit', ...({ embedding_model: 'Xenova/bge-small-en-v1.5' } as object) }),
      (error: unknown) =>
        error instanceof OpenAI.BadRequestError && /CAIRN_MODELS_DIR/.test(error.message) && /CAIRN_ALLOW_MODEL_DOWNLOAD/.test(error.message),
    );
  });

  it('leaves the default embedding model that cannot load out of /v1/models, and says why when it is retrieved', async () => {
    await client.vectorStores.create({ name: 'triggers-the-check' }); // the startup check has settled once this returns
    const ids = (await client.models.list()).data.map((model) => model.id);
    assert.ok(ids.includes('extractive'), ids.join(', '));
    assert.ok(!ids.includes('Xenova/bge-small-en-v1.5'), `listed although it cannot serve: ${ids.join(', ')}`);
    await assert.rejects(
      client.models.retrieve('Xenova/bge-small-en-v1.5'),
      (error: unknown) => error instanceof OpenAI.APIError && error.status === 503 && /downloads are disabled/.test(error.message),
    );
  });

  it('re-ingests a re-attached file with new chunking and leaves exactly the new points', async () => {
    const kb = await client.vectorStores.create({ name: 'rechunk', ...({ embedding_model: 'none' } as object) });
    const file = await client.files.create({ file: await toFile(Buffer.from(longText(40)), 'long.txt'), purpose: 'assistants' });
    const coarse = await client.vectorStores.files.createAndPoll(kb.id, {
      file_id: file.id,
      chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 800, chunk_overlap_tokens: 0 } },
    });
    const fine = await client.vectorStores.files.createAndPoll(kb.id, {
      file_id: file.id,
      chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 20 } },
    });
    const coarseCount = (coarse as unknown as { chunk_count: number }).chunk_count;
    const fineCount = (fine as unknown as { chunk_count: number }).chunk_count;
    assert.ok(fineCount > coarseCount, `${fineCount} > ${coarseCount}`);
    const points = await cairn.services.chunkStore.count('cairn_lexical', { projectId, kbId: kb.id, fileId: file.id });
    assert.equal(points, fineCount);
  });

  it('rejects invalid chunking strategies with the parameter named', async () => {
    const kb = await client.vectorStores.create({ name: 'bad-chunking', ...({ embedding_model: 'none' } as object) });
    const file = await client.files.create({ file: await toFile(Buffer.from('x y z'), 'x.txt'), purpose: 'assistants' });
    await assert.rejects(
      client.vectorStores.files.create(kb.id, {
        file_id: file.id,
        chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 200, chunk_overlap_tokens: 150 } },
      }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && /chunk_overlap_tokens/.test(error.param ?? ''),
    );
  });

  it('uploads a folder with `cairn ingest --create` and reports failures', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cairn-ingest-'));
    await mkdir(path.join(dir, 'sub'));
    await writeFile(path.join(dir, 'one.md'), '# One\n\nThe first note is about tides.');
    await writeFile(path.join(dir, 'sub', 'two.txt'), 'The second note is about winds.');
    await writeFile(path.join(dir, 'sub', 'empty.txt'), '');
    await writeFile(path.join(dir, '.hidden'), 'skipped');
    const result = await run(process.execPath, ['--import', 'tsx', MAIN, 'ingest', dir, '--kb', 'notes', '--create', '--embedding-model', 'none'], {
      env: { ...process.env, CAIRN_BASE_URL: cairn.baseURL, CAIRN_API_KEY: cairn.key },
    }).catch((error: { code: number; stderr: string }) => error);
    assert.equal((result as { code?: number }).code, 1, 'one file failed');
    assert.match((result as { stderr: string }).stderr, /1 file\(s\) failed/);
    const kbs = await client.vectorStores.list();
    const notes = kbs.data.find((kb) => kb.name === 'notes')!;
    assert.deepEqual(notes.file_counts, { in_progress: 0, completed: 2, failed: 1, cancelled: 0, total: 3 });
    const hits = await client.vectorStores.search(notes.id, { query: 'winds' });
    assert.equal(hits.data[0]!.filename, 'two.txt');
  });
});
