/**
 * Partial uploads a killed API left in blobs/staging (what SIGKILL mid-upload leaves: a staged file
 * nobody will commit or discard) are removed when Cairn starts and periodically while it runs;
 * files younger than the cut-off, as a live upload's is, stay.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { until } from './helpers/wait.ts';

/** A staged upload last written an hour ago, long past any request timeout. */
async function abandonedUpload(staging: string, name: string): Promise<void> {
  await writeFile(path.join(staging, name), Buffer.alloc(64 * 1024, 120));
  const anHourAgo = new Date(Date.now() - 3_600_000);
  await utimes(path.join(staging, name), anHourAgo, anHourAgo);
}

describe('staging sweeper', () => {
  let dataDir: string;
  let staging: string;
  let cairn: TestCairn;

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'cairn-staging-'));
    staging = path.join(dataDir, 'blobs', 'staging');
    await mkdir(staging, { recursive: true });
    await abandonedUpload(staging, 'left-by-a-killed-api');
    await writeFile(path.join(staging, 'being-uploaded'), Buffer.alloc(1024));
    cairn = await startCairn({ env: { CAIRN_DATA_DIR: dataDir, CAIRN_REQUEST_TIMEOUT_MS: '1000', CAIRN_HEADERS_TIMEOUT_MS: '500' } });
  });
  after(async () => {
    await cairn?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('removes what a killed process left at start, and leaves a recent (live) upload alone', async () => {
    assert.deepEqual(await readdir(staging), ['being-uploaded']);
    assert.match(cairn.logs.text(), /"removed":1,.*removed partial uploads left in staging/);
  });

  it('keeps sweeping while running', async () => {
    await abandonedUpload(staging, 'left-later');
    await until('the periodic sweep to remove it', async () => !(await readdir(staging)).includes('left-later'), 20_000);
    assert.deepEqual(await readdir(staging), ['being-uploaded']);
  });

  it('never touches an upload in progress: a file uploaded now is stored whole', async () => {
    const file = await cairn.client().files.create({ file: new File([Buffer.alloc(200_000, 97)], 'whole.txt'), purpose: 'assistants' });
    const content = await cairn.client().files.content(file.id);
    assert.equal((await content.arrayBuffer()).byteLength, 200_000);
  });
});
