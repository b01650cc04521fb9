/** The `cairn` command as an operator runs it, in its own process. */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from './helpers/harness.ts';
import { acquireTestQdrant } from './helpers/qdrant.ts';

const run = promisify(execFile);
const MAIN = path.resolve(import.meta.dirname, '../src/main.ts');

function cairn(args: string[], env: Record<string, string>) {
  return run(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, ...env } });
}

describe('cairn CLI', () => {
  let database: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    database = await createTestDatabase();
    env = { DATABASE_URL: database.url, CAIRN_LOG_LEVEL: 'warn' };
  });
  after(() => database.drop());

  it('migrates, then says the database is up to date', async () => {
    assert.match((await cairn(['migrate'], env)).stdout, /applied: 001_projects_keys_usage/);
    assert.match((await cairn(['migrate'], env)).stdout, /database is up to date/);
  });

  it('creates a key printed alone on the last line, lists it redacted and revokes it', async () => {
    const created = await cairn(['keys', 'create', '--project', 'acme', '--name', 'ci'], env);
    const key = created.stdout.trim().split('\n').at(-1)!;
    assert.match(key, /^sk-cairn-[A-Za-z0-9_-]{32}$/);
    const listed = (await cairn(['keys', 'list', '--project', 'acme'], env)).stdout;
    assert.ok(!listed.includes(key), 'list never shows the key');
    assert.ok(listed.includes(`${key.slice(0, 13)}…${key.slice(-4)}`));
    const keyId = listed.split('\t')[0]!;
    assert.match(listed, /\tactive\n$/);
    assert.match((await cairn(['keys', 'revoke', keyId], env)).stdout, new RegExp(`revoked ${keyId}`));
    assert.match((await cairn(['keys', 'list'], env)).stdout, /\trevoked /);
    await assert.rejects(cairn(['keys', 'revoke', keyId], env), /no active key/);
  });

  it('sets rate limits on keys and projects, and a storage quota on projects', async () => {
    const created = await cairn(['keys', 'create', '--project', 'limited', '--rpm', '30'], env);
    const keyId = /Created (key_\w+)/.exec(created.stdout)![1]!;
    assert.match((await cairn(['keys', 'list', '--project', 'limited'], env)).stdout, /\trpm=30 tpm=project\tactive\n$/);
    assert.match((await cairn(['keys', 'limits', keyId, '--rpm', 'none', '--tpm', '5000'], env)).stdout, /rpm inherited, tpm 5000/);
    assert.match((await cairn(['keys', 'list', '--project', 'limited'], env)).stdout, /\trpm=project tpm=5000\t/);
    await cairn(['projects', 'limits', 'limited', '--rpm', '10', '--storage-bytes', '1000000'], env);
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    const [project] = (await admin.query("SELECT rpm_limit, tpm_limit, storage_quota_bytes FROM projects WHERE name = 'limited'")).rows;
    await admin.end();
    assert.deepEqual(project, { rpm_limit: 10, tpm_limit: null, storage_quota_bytes: '1000000' });
    await assert.rejects(cairn(['keys', 'limits', keyId, '--rpm', '0'], env), /positive integer up to 2147483647, or "none"/);
    await assert.rejects(cairn(['keys', 'limits', keyId, '--tpm', '3000000000'], env), /positive integer up to 2147483647/);
    await assert.rejects(cairn(['keys', 'limits', 'key_unknown', '--rpm', '1'], env), /no key with id key_unknown/);
  });

  it('stops with a message naming a bad variable', async () => {
    await assert.rejects(cairn(['migrate'], { ...env, CAIRN_PORT: 'x' }), (error: { code: number; stderr: string }) => {
      assert.equal(error.code, 2);
      assert.match(error.stderr, /CAIRN_PORT/);
      return true;
    });
  });

  it('prints a first key in server mode too, once: on the start that finds no active key', async () => {
    const fresh = await createTestDatabase();
    const qdrant = await acquireTestQdrant();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'cairn-server-mode-'));
    const serverEnv = { ...process.env, DATABASE_URL: fresh.url, QDRANT_URL: qdrant.url, REDIS_URL: '', CAIRN_DATA_DIR: dataDir, CAIRN_PORT: '0', CAIRN_EMBEDDING_MODEL: 'none' };
    const start = async (): Promise<{ url: string; output(): string; stop(): Promise<number | null> }> => {
      const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve'], { env: serverEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          const match = /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"cairn listening"/.exec(output);
          if (match) resolve(match[1]!);
        });
        void exited.then((code) => reject(new Error(`exited with ${code}: ${output}`)));
      });
      return { url, output: () => output, stop: () => (child.kill('SIGTERM'), exited) };
    };
    try {
      const first = await start();
      const key = /(sk-cairn-[A-Za-z0-9_-]{32})/.exec(first.output())?.[1];
      assert.ok(key, `the first server-mode start prints a key: ${first.output()}`);
      assert.ok(!/"msg":"[^"]*sk-cairn-/.test(first.output()), 'never into a log line');
      assert.equal((await new OpenAI({ baseURL: `${first.url}/v1`, apiKey: key, maxRetries: 0 }).models.list()).object, 'list');
      assert.equal(await first.stop(), 0, first.output());
      const second = await start();
      assert.equal(await second.stop(), 0, second.output());
      assert.ok(!/sk-cairn-/.test(second.output()), `a later start prints none: ${second.output()}`);
    } finally {
      await qdrant.release();
      await fresh.drop();
    }
  });

  it('serves embedded with no services, prints a first key once, and stops on SIGTERM', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'cairn-embedded-'));
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve'], {
      // Nothing external: PGlite, in-process jobs and a managed Qdrant, all under the data dir.
      env: { ...process.env, CAIRN_DATA_DIR: dataDir, CAIRN_PORT: '0', CAIRN_EMBEDDING_MODEL: 'none', DATABASE_URL: '', REDIS_URL: '', QDRANT_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const listening = new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"cairn listening"/.exec(output);
        if (match) resolve(match[1]!);
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code}: ${output}`)));
    });
    const url = await listening;
    const key = /(sk-cairn-[A-Za-z0-9_-]{32})/.exec(output)?.[1];
    assert.ok(key, 'the first key is printed');
    assert.equal(output.split(key).length - 1, 1, 'exactly once');
    const models = await new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 }).models.list();
    assert.equal(models.object, 'list');
    const ready = (await (await fetch(`${url}/readyz`)).json()) as { checks: Record<string, string> };
    assert.deepEqual(ready.checks, { database: 'ok', vector_store: 'ok', queue: 'ok' });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
