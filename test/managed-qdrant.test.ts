/** The embedded-mode Qdrant: Cairn spawns the engine from the npm package and owns its lifecycle. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { ManagedQdrant, QdrantBinaryMissingError, type ManagedQdrantLogger } from '../src/vectors/managed-qdrant.ts';
import { until } from './helpers/wait.ts';

interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: object;
  msg: string;
}

/** Records entries; `next(level)` resolves at the next entry of that level, so tests wait on events, not time. */
function recordingLogger(): ManagedQdrantLogger & { entries: LogEntry[]; next(level: LogEntry['level']): Promise<LogEntry> } {
  const entries: LogEntry[] = [];
  const waiters: Array<{ level: LogEntry['level']; resolve(entry: LogEntry): void }> = [];
  const log = (level: LogEntry['level']) => (obj: object, msg: string) => {
    const entry = { level, obj, msg };
    entries.push(entry);
    for (const waiter of waiters.filter((w) => w.level === level)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(entry);
    }
  };
  return {
    entries,
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    next: (level) => new Promise((resolve) => waiters.push({ level, resolve })),
  };
}

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await once(child, 'close');
  return child.pid!;
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  }
}

describe('ManagedQdrant', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'cairn-managed-qdrant-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('starts Qdrant on loopback with storage in the given directory, and stop() ends it', async () => {
    const storageDir = path.join(root, 'basic');
    const logger = recordingLogger();
    const qdrant = await ManagedQdrant.start({ storageDir, logger });
    try {
      assert.match(qdrant.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(await answers(qdrant.url), true);
      assert.ok((await stat(path.join(storageDir, 'storage'))).isDirectory(), 'storage lives under storageDir/storage');
      assert.ok((await stat(path.join(storageDir, '.qdrant-initialized'))).isFile(), 'qdrant runs with storageDir as its cwd');
      assert.equal(await readFile(path.join(storageDir, 'qdrant.pid'), 'utf8'), `${qdrant.pid} ${process.pid}`, 'the pid file names Qdrant and its owner');
      assert.ok(logger.entries.some((e) => e.level === 'debug' && /Qdrant HTTP listening/.test(JSON.stringify(e.obj))), 'its log reaches ours at debug');
    } finally {
      await qdrant.stop();
    }
    assert.equal(await answers(qdrant.url), false, 'the port is closed after stop()');
    await qdrant.stop(); // a second stop is a no-op
    await assert.rejects(stat(path.join(storageDir, 'qdrant.pid')), { code: 'ENOENT' });
    assert.deepEqual(logger.entries.filter((e) => e.level === 'error' || /did not stop/.test(e.msg)), [], 'a requested stop is clean');
  });

  it('logs an error when Qdrant dies on its own', async () => {
    const logger = recordingLogger();
    const qdrant = await ManagedQdrant.start({ storageDir: path.join(root, 'dies'), logger });
    const logged = logger.next('error');
    process.kill(qdrant.pid!, 'SIGKILL');
    const entry = await logged;
    assert.match(entry.msg, /stopped unexpectedly/);
    assert.match(JSON.stringify(entry.obj), /SIGKILL/);
    await qdrant.stop();
  });

  it('exits when the process that started it is SIGKILLed', async () => {
    const storageDir = path.join(root, 'parent-killed');
    const module = new URL('../src/vectors/managed-qdrant.ts', import.meta.url).href;
    // A parent that starts Qdrant, reports its pid and then idles until it is killed.
    const parent = spawn(
      process.execPath,
      [
        '--import', 'tsx', '--input-type=module', '-e',
        `import { ManagedQdrant } from ${JSON.stringify(module)};
         const quiet = { debug() {}, info() {}, warn() {}, error() {} };
         const qdrant = await ManagedQdrant.start({ storageDir: ${JSON.stringify(storageDir)}, logger: quiet });
         console.log(JSON.stringify({ pid: qdrant.pid, url: qdrant.url }));
         setInterval(() => undefined, 60_000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const [line] = (await once(createInterface({ input: parent.stdout! }), 'line')) as [string];
    const { pid, url } = JSON.parse(line) as { pid: number; url: string };
    const runsQdrant = async () => (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes('qdrant');
    assert.equal(await runsQdrant(), true);
    assert.equal(await answers(url), true);

    parent.kill('SIGKILL');
    await once(parent, 'close');
    await until('Qdrant to exit after its parent was killed', async () => !(await runsQdrant()), 30_000);
    assert.equal(await answers(url), false);
  });

  it('stops a Qdrant that a crashed Cairn left holding the same storage', async () => {
    const storageDir = path.join(root, 'orphan');
    const orphanLogger = recordingLogger();
    const orphan = await ManagedQdrant.start({ storageDir, logger: orphanLogger });
    // Make the pid file name a Cairn process that is gone, as after a crash.
    await writeFile(path.join(storageDir, 'qdrant.pid'), `${orphan.pid} ${await deadPid()}`);
    const orphanDied = orphanLogger.next('error');
    const qdrant = await ManagedQdrant.start({ storageDir, logger: recordingLogger() });
    try {
      await orphanDied;
      assert.equal(await answers(orphan.url), false);
      assert.equal(await answers(qdrant.url), true);
    } finally {
      await Promise.all([qdrant.stop(), orphan.stop()]);
    }
  });

  it('refuses the storage of a Qdrant whose Cairn process is alive', async () => {
    const storageDir = path.join(root, 'shared');
    const first = await ManagedQdrant.start({ storageDir, logger: recordingLogger() });
    try {
      await assert.rejects(
        ManagedQdrant.start({ storageDir, logger: recordingLogger() }),
        new RegExp(`Qdrant \\(pid ${first.pid}\\), started by process ${process.pid}, is already using .*QDRANT_URL`, 's'),
      );
      assert.equal(await answers(first.url), true, 'the running Qdrant is left alone');
    } finally {
      await first.stop();
    }
  });

  it('fails with a clear message when the binary is missing or not executable', async () => {
    const advice = /QDRANT_URL.*QDRANT_BIN.*docker compose/s;
    await assert.rejects(
      ManagedQdrant.start({ binary: path.join(root, 'no-such-qdrant'), storageDir: path.join(root, 'missing'), logger: recordingLogger() }),
      (error: Error) => error instanceof QdrantBinaryMissingError && /no-such-qdrant/.test(error.message) && advice.test(error.message),
    );
    const notExecutable = path.join(root, 'not-executable');
    await writeFile(notExecutable, 'not a program');
    await assert.rejects(
      ManagedQdrant.start({ binary: notExecutable, storageDir: path.join(root, 'missing'), logger: recordingLogger() }),
      (error: Error) => error instanceof QdrantBinaryMissingError && advice.test(error.message),
    );
  });

  it('fails with the last output when the binary exits before it is ready', async () => {
    const broken = path.join(root, 'broken-qdrant');
    await writeFile(broken, '#!/bin/sh\necho "config is invalid: bad storage"\necho "panicked at main.rs" >&2\nexit 3\n');
    await chmod(broken, 0o755);
    const logger = recordingLogger();
    await assert.rejects(
      ManagedQdrant.start({ binary: broken, storageDir: path.join(root, 'broken'), logger }),
      (error: Error) => /exited with code 3/.test(error.message) && /config is invalid: bad storage/.test(error.message) && /panicked/.test(error.message),
    );
    assert.ok(logger.entries.some((e) => e.level === 'warn' && /panicked/.test(JSON.stringify(e.obj))), 'stderr is logged at warn');
  });

  it('gives up after the ready timeout when Qdrant never answers', async () => {
    const silent = path.join(root, 'silent-qdrant');
    await writeFile(silent, '#!/bin/sh\nexec sleep 30\n');
    await chmod(silent, 0o755);
    const started = Date.now();
    await assert.rejects(
      ManagedQdrant.start({ binary: silent, storageDir: path.join(root, 'silent'), logger: recordingLogger(), readyTimeoutMs: 500, stopTimeoutMs: 1_000 }),
      /not ready after 500 ms/,
    );
    assert.ok(Date.now() - started < 5_000, 'the wait is bounded and the process is stopped');
  });
});
