/**
 * What a fresh clone needs: the tests read only the repository, and Cairn's own npm
 * configuration makes npm print no warnings.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '..');

async function sourceFiles(directory: string): Promise<string[]> {
  const entries = await readdir(path.join(REPO, directory), { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && /\.(ts|js|json)$/.test(entry.name))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

describe('a fresh clone', () => {
  it('has tests, helpers and sources that read nothing from ../shared (only this team has it)', async () => {
    const offenders: string[] = [];
    for (const directory of ['test', 'src', 'workers']) {
      for (const file of await sourceFiles(directory)) {
        if (file === import.meta.filename) continue;
        const text = await readFile(file, 'utf8');
        if (/\.\.\/(\.\.\/)*shared\//.test(text) || text.includes("'shared', 'models'")) offenders.push(path.relative(REPO, file));
      }
    }
    assert.deepEqual(offenders, []);
  });

  it('gets no "Unknown project config" warning from the repository .npmrc', async () => {
    const { stderr } = await run('npm', ['config', 'list'], { cwd: REPO, env: { ...process.env, NO_COLOR: '1' } });
    assert.doesNotMatch(stderr, /Unknown (project )?config/);
    const npmrc = await readFile(path.join(REPO, '.npmrc'), 'utf8');
    assert.doesNotMatch(npmrc, /onnxruntime/, "the install switch lives in package.json's allowScripts and ONNXRUNTIME_NODE_INSTALL_CUDA");
  });

  it("reviews every dependency install script in package.json's allowScripts, and denies onnxruntime-node's CUDA download", async () => {
    const manifest = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
    assert.equal(manifest.allowScripts?.['onnxruntime-node'], false);
    const { stdout, stderr } = await run('npm', ['install-scripts', 'ls'], { cwd: REPO, env: { ...process.env, NO_COLOR: '1' } });
    assert.match(stdout, /No packages with unreviewed install scripts/);
    assert.doesNotMatch(stderr, /npm warn/);
  });
});
