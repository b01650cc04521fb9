/** planSync: what `cairn ingest` uploads, skips, replaces and detaches, from local files and the knowledge base's files. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { KbFileObject } from '../src/cli/cairn-api-client.ts';
import { collectLocalFiles, planSync, type LocalFile } from '../src/cli/ingest-sync.ts';

const local = (key: string, sha256: string): LocalFile => ({ absolute: `/x/${key}`, key, sha256 });
const remote = (id: string, key: string | undefined, sha256: string, status: KbFileObject['status'] = 'completed'): KbFileObject => ({
  id,
  status,
  attributes: key === undefined ? {} : { path: key, sha256 },
});

describe('planSync', () => {
  it('skips unchanged files, uploads new and changed ones, and supersedes the old versions and duplicates', () => {
    const plan = planSync(
      [local('docs/a.md', 'h1'), local('docs/b.md', 'h2-new'), local('docs/c.md', 'h3')],
      [remote('file-a', 'docs/a.md', 'h1'), remote('file-a-dup', 'docs/a.md', 'h1'), remote('file-b', 'docs/b.md', 'h2')],
      { deleteMissing: false, prefixes: ['docs/'] },
    );
    assert.deepEqual(plan.skip.map((file) => file.key), ['docs/a.md']);
    assert.deepEqual(plan.upload.map((file) => file.key), ['docs/b.md', 'docs/c.md']);
    assert.deepEqual([...plan.changed], ['docs/b.md']);
    assert.deepEqual(plan.superseded.map((file) => file.id), ['file-a-dup', 'file-b']);
    assert.deepEqual(plan.gone, []);
  });

  it('uploads again a file whose earlier ingestion failed or was cancelled', () => {
    const plan = planSync([local('docs/a.md', 'h1')], [remote('file-a', 'docs/a.md', 'h1', 'failed')], { deleteMissing: false, prefixes: ['docs/'] });
    assert.deepEqual(plan.upload.map((file) => file.key), ['docs/a.md']);
    assert.deepEqual(plan.superseded.map((file) => file.id), ['file-a']);
  });

  it('with --delete, detaches only files from the given folders that are gone, never files attached otherwise', () => {
    const files = [remote('gone', 'docs/old.md', 'h'), remote('other-folder', 'notes/x.md', 'h'), remote('by-sdk', undefined, 'h')];
    assert.deepEqual(planSync([], files, { deleteMissing: false, prefixes: ['docs/'] }).gone, []);
    assert.deepEqual(planSync([], files, { deleteMissing: true, prefixes: ['docs/'] }).gone.map((file) => file.id), ['gone']);
  });
});

describe('collectLocalFiles', () => {
  it('keys files by their path from the folder name down, with forward slashes, whatever the working directory', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cairn-ingest-keys-'));
    try {
      await mkdir(path.join(dir, 'docs', 'sub'), { recursive: true });
      await writeFile(path.join(dir, 'docs', 'sub', 'a.txt'), 'hello');
      await writeFile(path.join(dir, 'docs', '.hidden'), 'skipped');
      await writeFile(path.join(dir, 'single.md'), 'x');
      const { files, prefixes } = await collectLocalFiles([path.join(dir, 'docs'), path.join(dir, 'single.md')]);
      assert.deepEqual(files.map((file) => file.key), ['docs/sub/a.txt', 'single.md']);
      assert.equal(files[0]!.sha256, '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824', 'sha256("hello")');
      assert.deepEqual(prefixes, ['docs/']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
