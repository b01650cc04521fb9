/**
 * One writer per embedded data dir: CLI admin commands run by the server that holds it (over its
 * 0600 admin socket), or under the same lock when none runs; a SIGKILLed holder's lock is reclaimed.
 * Real processes throughout: `cairn serve` and `cairn keys …` as an operator runs them.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { DataDirLock, DataDirLockError } from '../src/admin/data-dir-lock.ts';
import { adminSocketPath, greeting, lineReader, writeLine } from '../src/admin/protocol.ts';
import { until } from './helpers/wait.ts';

const run = promisify(execFile);
const MAIN = path.resolve(import.meta.dirname, '../src/main.ts');
const dirs: string[] = [];

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-lock-'));
  dirs.push(dir);
  return dir;
}

/** Embedded mode with nothing external, like `npm start` on a fresh machine. */
function embeddedEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, CAIRN_DATA_DIR: dir, CAIRN_PORT: '0', CAIRN_EMBEDDING_MODEL: 'none', CAIRN_LOG_LEVEL: 'info', DATABASE_URL: '', REDIS_URL: '', QDRANT_URL: '' };
}

function cairn(dir: string, args: string[]) {
  return run(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: embeddedEnv(dir) });
}

async function createKey(dir: string, project: string): Promise<{ key: string; id: string }> {
  const { stdout } = await cairn(dir, ['keys', 'create', '--project', project]);
  return { key: stdout.trim().split('\n').at(-1)!, id: /Created (key_\w+)/.exec(stdout)![1]! };
}

interface Served {
  child: ChildProcess;
  url: string;
  output(): string;
  /** SIGTERM, and the exit code. */
  stop(): Promise<number | null>;
}

async function serve(dir: string): Promise<Served> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve'], { env: embeddedEnv(dir), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const url = await new Promise<string>((resolve, reject) => {
    const read = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"cairn listening"/.exec(output);
      if (match) resolve(match[1]!);
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    void exited.then((code) => reject(new Error(`cairn serve exited with ${code}: ${output}`)));
  });
  return {
    child,
    url,
    output: () => output,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

function client(url: string, apiKey: string): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0 });
}

async function status(url: string, apiKey: string): Promise<number> {
  return (await client(url, apiKey).models.list().withResponse().then(({ response }) => response, (error: { status: number }) => error)).status;
}

after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A process that binds the data dir's socket and dies by SIGKILL: what a crashed server leaves. */
async function leaveStaleSocket(dir: string): Promise<void> {
  const socket = adminSocketPath(dir);
  const script = `require('node:fs').mkdirSync(${JSON.stringify(path.dirname(socket))}, { recursive: true });
    require('node:net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`;
  await run(process.execPath, ['-e', script]).catch((error: { signal?: string }) => assert.equal(error.signal, 'SIGKILL'));
  assert.ok(existsSync(socket));
}

describe('DataDirLock', () => {
  it('has one holder; the others get a connection that is greeted once the holder serves, and answered by it', async () => {
    const dir = await dataDir();
    const first = await DataDirLock.acquire(dir, 'cli');
    assert.ok('lock' in first);
    const second = await DataDirLock.acquire(dir, 'server');
    assert.ok('holder' in second, 'the data dir is held');
    const lines = lineReader(second.holder);
    const greeted = lines.next();
    first.lock.serve(async (request) => ({ ok: true, result: { echoed: request.command } }));
    assert.deepEqual(greeting.parse(await greeted), { cairn: 'admin', owner: 'cli', pid: process.pid });
    writeLine(second.holder, { command: 'keys.list', input: {} });
    assert.deepEqual(await lines.next(), { ok: true, result: { echoed: 'keys.list' } });
    await first.lock.release();
    assert.ok(!existsSync(adminSocketPath(dir)));
    const third = await DataDirLock.acquire(dir, 'cli');
    assert.ok('lock' in third, 'a released lock can be taken again');
    await third.lock.release();
  });

  it('lets exactly one of several processes racing for a dead holder\'s socket take it', async () => {
    const dir = await dataDir();
    await leaveStaleSocket(dir);
    // Each contender loads, says "ready", races on "go", reports what it got and holds it until stdin ends.
    const script = `import { DataDirLock } from ${JSON.stringify(path.resolve(import.meta.dirname, '../src/admin/data-dir-lock.ts'))};
      const lines = (await import('node:readline')).createInterface({ input: process.stdin });
      const next = () => new Promise((resolve) => lines.once('line', resolve));
      process.stdout.write('ready\\n');
      await next();
      const got = await DataDirLock.acquire(${JSON.stringify(dir)}, 'cli');
      process.stdout.write(('lock' in got ? 'lock' : 'holder') + '\\n');
      await new Promise((resolve) => lines.once('close', resolve));
      if ('lock' in got) await got.lock.release(); else got.holder.destroy();`;
    const contenders = Array.from({ length: 6 }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
      const said: string[] = [];
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => said.push(line));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      return { child, said, exited };
    });
    await until('every contender is ready', () => contenders.every(({ said }) => said.includes('ready')), 120_000);
    for (const { child } of contenders) child.stdin!.write('go\n');
    await until('every contender has its answer', () => contenders.every(({ said }) => said.length === 2), 60_000);
    const got = contenders.map(({ said }) => said[1]);
    for (const { child } of contenders) child.stdin!.end();
    await Promise.all(contenders.map(({ exited }) => exited));
    assert.deepEqual(got.filter((what) => what === 'lock'), ['lock'], `one holder among ${got.join(', ')}`);
  });

  it('refuses a data dir whose socket path a Unix socket cannot hold, saying so', async () => {
    const dir = path.join(await dataDir(), 'd'.repeat(120));
    await assert.rejects(DataDirLock.acquire(dir, 'cli'), (error: Error) => {
      assert.ok(error instanceof DataDirLockError);
      assert.match(error.message, /CAIRN_DATA_DIR is too long for its admin socket/);
      return true;
    });
  });

  it('closes connections unanswered while draining, so their senders know nothing ran', async () => {
    const dir = await dataDir();
    const first = await DataDirLock.acquire(dir, 'cli');
    assert.ok('lock' in first);
    const waiting = await DataDirLock.acquire(dir, 'cli');
    assert.ok('holder' in waiting);
    const lines = lineReader(waiting.holder);
    await first.lock.drain();
    assert.equal(await lines.next(), undefined, 'closed without a greeting');
    await first.lock.release();
  });
});

describe('one writer per embedded data dir', () => {
  it('carries out keys create/limits/revoke in the running server: effective at once over HTTP and after a restart', async () => {
    const dir = await dataDir();
    let server = await serve(dir);
    try {
      const socket = adminSocketPath(dir);
      assert.equal((await stat(socket)).mode & 0o777, 0o600, 'the admin socket is owner-only');
      assert.equal((await stat(path.dirname(socket))).mode & 0o777, 0o700, 'and so is its folder');

      // Two CLIs at once, both carried out by the server.
      const [kept, revoked] = await Promise.all([createKey(dir, 'x'), createKey(dir, 'x')]);
      assert.equal(await status(server.url, kept.key), 200, 'a key made by the CLI works on the running server at once');
      assert.equal(await status(server.url, revoked.key), 200);

      // The key is cached by the server now: a new limit and a revocation must still apply at once.
      await cairn(dir, ['keys', 'limits', kept.id, '--rpm', '7']);
      const limited = await fetch(`${server.url}/v1/models`, { headers: { authorization: `Bearer ${kept.key}` } });
      assert.equal(limited.headers.get('x-ratelimit-limit-requests'), '7');
      assert.match((await cairn(dir, ['keys', 'revoke', revoked.id])).stdout, new RegExp(`revoked ${revoked.id}`));
      assert.equal(await status(server.url, revoked.key), 401, 'a revoked key is refused at once');
      await cairn(dir, ['projects', 'limits', 'x', '--tpm', '900']);
      const listed = (await cairn(dir, ['keys', 'list', '--project', 'x'])).stdout;
      assert.match(listed, new RegExp(`${kept.id}\\tx\\t.*\\trpm=7 tpm=project\\tactive\\n`));
      assert.match(listed, new RegExp(`${revoked.id}\\tx\\t.*\\trevoked `));
      assert.match((await cairn(dir, ['migrate'])).stdout, /database is up to date/);
      await assert.rejects(serve(dir), (error: Error) => {
        assert.match(error.message, /exited with 1: cairn: another Cairn server \(pid \d+\) is using /, 'a second server on the data dir refuses in one line');
        return true;
      });

      assert.equal(await server.stop(), 0);
      assert.ok(!existsSync(socket), 'a clean stop releases the lock');
      server = await serve(dir);
      assert.equal(await status(server.url, kept.key), 200, 'the key survived the restart');
      assert.equal(await status(server.url, revoked.key), 401, 'and so did the revocation');
      const after = await fetch(`${server.url}/v1/models`, { headers: { authorization: `Bearer ${kept.key}` } });
      assert.equal(after.headers.get('x-ratelimit-limit-requests'), '7', 'and the limit');
      assert.ok(!/sk-cairn-/.test(server.output()), 'no new first key while active keys exist');
    } finally {
      await server.stop();
    }
  });

  it('runs two CLIs at once with no server: one holds the data dir, the other forwards to it or waits', async () => {
    const dir = await dataDir();
    const created = await Promise.all(['a', 'b', 'c'].map((project) => createKey(dir, project)));
    const listed = (await cairn(dir, ['keys', 'list'])).stdout;
    for (const { id } of created) assert.match(listed, new RegExp(`${id}\\t`));
    assert.equal(listed.trim().split('\n').length, 3);
    assert.ok(!existsSync(adminSocketPath(dir)), 'the last CLI released the lock');
    // The server opens what the CLIs wrote, with their keys active: no first key is made.
    const server = await serve(dir);
    try {
      for (const { key } of created) assert.equal(await status(server.url, key), 200);
    } finally {
      await server.stop();
    }
  });

  it('reclaims the lock of a SIGKILLed server, from the next CLI and from the next server start', async () => {
    const dir = await dataDir();
    const first = await serve(dir);
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGKILL');
    await exited;
    assert.ok(existsSync(adminSocketPath(dir)), 'a SIGKILLed server leaves its socket file behind');

    const made = await createKey(dir, 'after-crash');
    assert.match(made.key, /^sk-cairn-/);
    const killedAgain = await serve(dir);
    const exitedAgain = new Promise((resolve) => killedAgain.child.once('exit', resolve));
    killedAgain.child.kill('SIGKILL');
    await exitedAgain;

    const server = await serve(dir);
    try {
      assert.equal(await status(server.url, made.key), 200, 'the key written by the CLI that reclaimed the lock is there');
    } finally {
      await server.stop();
    }
  });
});
