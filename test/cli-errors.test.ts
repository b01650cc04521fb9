/** How the `cairn` command fails: one line naming the problem and the fix, exit code ≠ 0, a stack only with --verbose. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from './helpers/wait.ts';

const MAIN = path.resolve(import.meta.dirname, '../src/main.ts');

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cairn(args: string[], env: Record<string, string>): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, ...env }, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

const STACK_FRAME = /^\s+at /m;

describe('cairn CLI errors', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'cairn-cli-errors-'));
  });
  after(() => rm(dataDir, { recursive: true, force: true }));

  it('serve on a port in use: one line naming the port and CAIRN_PORT, no EADDRINUSE stack, Qdrant logged (and stopped) once', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as AddressInfo;
    try {
      const result = await cairn(['serve'], { CAIRN_PORT: String(port), CAIRN_DATA_DIR: dataDir, CAIRN_EMBEDDING_MODEL: 'none', CAIRN_LOG_LEVEL: 'info' });
      assert.notEqual(result.code, 0);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0]!, new RegExp(`^cairn: port ${port} is already in use.*CAIRN_PORT`));
      assert.doesNotMatch(result.stderr, STACK_FRAME);
      assert.equal(result.stdout.split('\n').filter((line) => line.includes('managed Qdrant started')).length, 1, result.stdout);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('any command with an unreachable dependency: one line, exit 1; --verbose adds the stack', async () => {
    const env = { DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/nothing` };
    const quiet = await cairn(['keys', 'list'], env);
    assert.equal(quiet.code, 1);
    assert.equal(quiet.stderr.trim().split('\n').length, 1, quiet.stderr);
    assert.match(quiet.stderr, /^cairn: cannot connect to 127\.0\.0\.1:\d+ \(ECONNREFUSED\).*DATABASE_URL/);
    assert.doesNotMatch(quiet.stderr, STACK_FRAME);

    const verbose = await cairn(['keys', 'list', '--verbose'], env);
    assert.equal(verbose.code, 1);
    assert.match(verbose.stderr, /^cairn: cannot connect/);
    assert.match(verbose.stderr, STACK_FRAME);
  });

  it('eval without a dataset names the path and what it must hold', async () => {
    const missing = path.join(dataDir, 'no-scifact-here');
    const result = await cairn(['eval', 'beir', missing, '--api-key', 'sk-cairn-x'], {});
    assert.equal(result.code, 2);
    assert.equal(result.stderr, `cairn eval: no BEIR dataset at ${missing}: give a directory with corpus.jsonl, queries.jsonl and qrels/test.tsv (e.g. SciFact from the BEIR benchmark)\n`);
  });
});
