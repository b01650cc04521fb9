/** `cairn ingest` as a user runs it, in its own process, against a real Cairn (stdout and stderr are pipes, not a terminal). */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type OpenAI from 'openai';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { freePort } from './helpers/wait.ts';

const MAIN = path.resolve(import.meta.dirname, '../src/main.ts');

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cairnIngest(args: string[], env: Record<string, string>): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', MAIN, 'ingest', ...args], { env: { ...process.env, ...env }, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

describe('cairn ingest', () => {
  let cairn: TestCairn;
  let client: OpenAI;
  let dir: string;
  let env: Record<string, string>;

  before(async () => {
    cairn = await startCairn({ pglite: true });
    client = cairn.client();
    dir = await mkdtemp(path.join(tmpdir(), 'cairn-ingest-sync-'));
    env = { CAIRN_BASE_URL: cairn.baseURL, CAIRN_API_KEY: cairn.key };
  });
  after(async () => {
    await cairn.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('without a server: one line naming the URL and the fix, exit ≠ 0, no stack', async () => {
    const baseUrl = `http://127.0.0.1:${await freePort()}/v1`;
    const result = await cairnIngest([dir, '--kb', 'nowhere'], { CAIRN_BASE_URL: baseUrl, CAIRN_API_KEY: 'sk-cairn-x' });
    assert.equal(result.code, 1);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, new RegExp(`^cairn: cannot reach Cairn at ${baseUrl.replace(/[.]/g, '\\.')} \\(ECONNREFUSED\\)`));
    assert.match(lines[0]!, /npm start/);
    assert.match(lines[0]!, /--base-url or CAIRN_BASE_URL/);
    assert.doesNotMatch(result.stderr, /^\s+at /m);
  });

  it('syncs a folder: plain progress and a summary; a second run uploads nothing; changes replace, --delete detaches', async () => {
    const folder = path.join(dir, 'notes');
    await mkdir(path.join(folder, 'sub'), { recursive: true });
    await writeFile(path.join(folder, 'tides.md'), '# Tides\n\nThe moon pulls the tides twice a day.');
    await writeFile(path.join(folder, 'sub', 'winds.txt'), 'Trade winds blow from the east.');
    await writeFile(path.join(folder, 'sub', 'rocks.txt'), 'Granite is an igneous rock.');

    const first = await cairnIngest([folder, '--kb', 'sync', '--create'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /^uploaded notes\/sub\/winds\.txt$/m, 'one plain line per file when not a terminal');
    assert.match(first.stderr, /^ingesting: 3\/3 files done/m);
    assert.match(first.stdout, /^ingest sync \(\w+\): 3 uploaded \(0 replaced\), 0 skipped \(unchanged\), 0 failed, 0 detached; \d+ chunks in [\d.]+ s$/m);
    const kb = (await client.vectorStores.list()).data.find((entry) => entry.name === 'sync')!;
    const files = await client.vectorStores.files.list(kb.id);
    assert.deepEqual(files.data.map((file) => file.attributes?.path).sort(), ['notes/sub/rocks.txt', 'notes/sub/winds.txt', 'notes/tides.md']);
    assert.ok(files.data.every((file) => typeof file.attributes?.sha256 === 'string' && /^[0-9a-f]{64}$/.test(file.attributes.sha256)));

    const second = await cairnIngest([folder, '--kb', 'sync'], env);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /: 0 uploaded \(0 replaced\), 3 skipped \(unchanged\), 0 failed, 0 detached;/);
    assert.equal((await client.vectorStores.retrieve(kb.id)).file_counts.total, 3, 'nothing was uploaded twice');

    await writeFile(path.join(folder, 'sub', 'winds.txt'), 'Monsoon winds reverse with the seasons.');
    await rm(path.join(folder, 'sub', 'rocks.txt'));
    const third = await cairnIngest([folder, '--kb', 'sync', '--delete'], env);
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stderr, /^replaced notes\/sub\/winds\.txt$/m);
    assert.match(third.stderr, /^detached notes\/sub\/rocks\.txt$/m);
    assert.match(third.stdout, /: 1 uploaded \(1 replaced\), 1 skipped \(unchanged\), 0 failed, 1 detached;/);
    const after = await client.vectorStores.files.list(kb.id);
    assert.deepEqual(after.data.map((file) => file.attributes?.path).sort(), ['notes/sub/winds.txt', 'notes/tides.md']);
    const hits = await client.vectorStores.search(kb.id, { query: 'winds' });
    assert.deepEqual(hits.data.map((hit) => hit.content[0]!.text), ['Monsoon winds reverse with the seasons.'], 'the old version is gone');
  });

  it('names a missing knowledge base and the --create fix', async () => {
    const result = await cairnIngest([dir, '--kb', 'no-such-kb'], env);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^cairn: no knowledge base 'no-such-kb' at .*pass --create to create it\n$/);
  });
});
