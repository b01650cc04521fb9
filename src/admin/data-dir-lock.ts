/**
 * One writer per embedded data dir. PGlite is a single-process database: two processes opening
 * the same directory each keep their own copy in memory, and the last to write wins. So the
 * process that holds the data dir (the embedded server, or a CLI when no server runs) binds the
 * admin socket, and the bound socket is the lock:
 * - held while the socket accepts connections; others connect to it and forward their command;
 * - released by closing it (Node unlinks the path), or by the kernel when the holder dies: a
 *   SIGKILLed holder leaves a socket file that refuses connections, which the next process unlinks
 *   and binds again (under a short `.reclaim` mutex, so two reclaimers never unlink each other's).
 * The socket sits in a 0700 folder and is itself 0600: only the data dir's owner can connect.
 */
import { chmod, mkdir, rm, rmdir, stat } from 'node:fs/promises';
import net, { type Socket } from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { adminRequest, adminSocketPath, lineReader, writeLine, type AdminRequest, type AdminResponse, type OwnerKind } from './protocol.ts';

/** The data dir's socket cannot be used (path too long, another user's, not a socket): the message says why. */
export class DataDirLockError extends Error {}

export type AdminHandler = (request: AdminRequest) => Promise<AdminResponse>;

/** Unix socket paths are limited to 108 bytes on Linux (104 on macOS). */
const MAX_SOCKET_PATH_BYTES = 103;
/** How long a client may take to send its request once greeted. */
const REQUEST_TIMEOUT_MS = 10_000;
/** A reclaim mutex older than this was left by a process that died while reclaiming. */
const STALE_MUTEX_MS = 10_000;

type Probe = Socket | 'refused' | 'absent';

/** Connects to the socket: a live holder's connection, 'refused' (stale file) or 'absent'. */
function probe(socketPath: string): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') resolve('refused');
      else if (error.code === 'ENOENT') resolve('absent');
      else reject(new DataDirLockError(`cannot use the admin socket ${socketPath} (${error.code ?? error.message}); run cairn as the data dir's owner`, { cause: error }));
    });
  });
}

function listen(server: net.Server, socketPath: string): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const failed = (error: NodeJS.ErrnoException): void => resolve(error);
    server.once('error', failed);
    server.listen(socketPath, () => {
      server.off('error', failed);
      resolve(undefined);
    });
  });
}

/** Binds the socket; undefined when someone else holds the path. */
async function bind(socketPath: string): Promise<net.Server | undefined> {
  const server = net.createServer();
  const error = await listen(server, socketPath);
  if (!error) {
    await chmod(socketPath, 0o600);
    return server;
  }
  if (error.code === 'EADDRINUSE') return undefined;
  throw error;
}

/**
 * Unlinks a socket file nobody listens on, and binds it, under a mutex directory. A socket refusing
 * twice, 50 ms apart, is dead: a live holder is only between bind and listen for microseconds.
 */
async function reclaim(socketPath: string): Promise<net.Server | undefined> {
  const mutex = `${socketPath}.reclaim`;
  try {
    await mkdir(mutex);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const since = await stat(mutex).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (since > STALE_MUTEX_MS) await rmdir(mutex).catch(() => undefined);
    await delay(20);
    return undefined;
  }
  try {
    for (let check = 0; check < 2; check += 1) {
      if (check > 0) await delay(50);
      const found = await probe(socketPath);
      if (found === 'absent') break;
      if (found !== 'refused') {
        found.destroy();
        return undefined;
      }
    }
    await rm(socketPath, { force: true });
    return await bind(socketPath);
  } finally {
    await rmdir(mutex).catch(() => undefined);
  }
}

export class DataDirLock {
  private handler: AdminHandler | undefined;
  private draining = false;
  /** Connections that arrived before the holder could run commands: greeted by `serve`. */
  private readonly waiting = new Set<Socket>();
  private readonly inFlight = new Set<Promise<void>>();

  private constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
    private readonly owner: OwnerKind,
  ) {
    server.on('connection', (socket) => this.accept(socket));
    server.on('error', () => undefined);
  }

  /** The lock, or a connection to the live process that holds it (to forward a command to). */
  static async acquire(dataDir: string, owner: OwnerKind): Promise<{ lock: DataDirLock } | { holder: Socket }> {
    const socketPath = adminSocketPath(dataDir);
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
      throw new DataDirLockError(`CAIRN_DATA_DIR is too long for its admin socket ${socketPath} (at most ${MAX_SOCKET_PATH_BYTES} bytes); use a shorter path`);
    }
    await mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    await chmod(path.dirname(socketPath), 0o700);
    for (;;) {
      const bound = await bind(socketPath);
      if (bound) return { lock: new DataDirLock(bound, socketPath, owner) };
      const found = await probe(socketPath);
      if (found === 'absent') continue; // released between our bind and our probe
      if (found !== 'refused') return { holder: found };
      const reclaimed = await reclaim(socketPath);
      if (reclaimed) return { lock: new DataDirLock(reclaimed, socketPath, owner) };
    }
  }

  /** From now on, commands sent to the socket are run by `handler`. */
  serve(handler: AdminHandler): void {
    this.handler = handler;
    for (const socket of this.waiting) this.converse(socket, handler);
    this.waiting.clear();
  }

  /** Stops running commands (callers retry until the lock is free) and waits for those running. */
  async drain(): Promise<void> {
    this.draining = true;
    for (const socket of this.waiting) socket.destroy();
    this.waiting.clear();
    await Promise.all(this.inFlight);
  }

  /** Call once the data dir is closed: unlinks the socket, so the next process can take it. */
  async release(): Promise<void> {
    await this.drain();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    socket.on('error', () => undefined);
    // Not greeted: the client knows nothing ran and tries again.
    if (this.draining) return void socket.destroy();
    if (!this.handler) {
      this.waiting.add(socket);
      socket.once('close', () => this.waiting.delete(socket));
      return;
    }
    this.converse(socket, this.handler);
  }

  private converse(socket: Socket, handler: AdminHandler): void {
    const work = (async () => {
      const lines = lineReader(socket);
      socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy());
      writeLine(socket, { cairn: 'admin', owner: this.owner, pid: process.pid });
      const request = adminRequest.safeParse(await lines.next());
      if (socket.destroyed) return;
      socket.setTimeout(0);
      const response: AdminResponse = request.success
        ? await handler(request.data)
        : { ok: false, error: { message: 'not an admin request' } };
      socket.end(`${JSON.stringify(response)}\n`);
    })()
      .catch(() => void socket.destroy())
      .finally(() => this.inFlight.delete(work));
    this.inFlight.add(work);
  }
}
