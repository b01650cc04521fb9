/**
 * How the CLI runs an admin command. Server mode: against PostgreSQL directly (it handles
 * concurrent writers). Embedded: by whoever holds the data dir. If that is a running server (or
 * another CLI), the command is sent over the admin socket and takes effect in that process at once;
 * if nobody holds it, this CLI takes the lock, opens PGlite itself and answers the others meanwhile.
 */
import type { Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { Config } from '../config.ts';
import { ApiKeyStore } from '../store/api-keys.ts';
import { openDatabase, type Database } from '../store/database.ts';
import { migrate } from '../store/migrations.ts';
import { adminHandler, type AdminCommandName, type AdminContext, type AdminInput, type AdminResult } from './admin-commands.ts';
import { DataDirLock } from './data-dir-lock.ts';
import { adminResponse, greeting, lineReader, writeLine, type AdminRequest, type AdminResponse, type Greeting } from './protocol.ts';

/** A command that ran and failed (unknown key id, bad input): its message is for the operator. */
export class AdminCommandError extends Error {}

/** How long to wait before asking again when the holder is stopping or is a short-lived CLI. */
const RETRY_MS = 50;

export async function runAdminCommand<Name extends AdminCommandName>(
  config: Config,
  name: Name,
  input: AdminInput<Name>,
): Promise<AdminResult<Name>> {
  const request: AdminRequest = { command: name, input };
  const response = config.embedded ? await runEmbedded(config.dataDir, request) : await runOn(config, request);
  if (!response.ok) throw new AdminCommandError(response.error.message);
  return response.result as AdminResult<Name>;
}

async function openFor(config: Pick<Config, 'databaseUrl' | 'dataDir'>): Promise<Database> {
  return openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2, onError: () => undefined });
}

/**
 * The database is migrated before any command runs; what that applied is reported by the first
 * `migrate` command, so `cairn migrate` on an old data dir still lists what it did.
 */
async function localContext(db: Database): Promise<AdminContext> {
  let applied: string[] | undefined = await migrate(db);
  return {
    keys: new ApiKeyStore(db),
    async migrate() {
      const before = applied ?? [];
      applied = undefined;
      return [...before, ...(await migrate(db))];
    },
  };
}

async function runOn(config: Pick<Config, 'databaseUrl' | 'dataDir'>, request: AdminRequest, lock?: DataDirLock): Promise<AdminResponse> {
  const db = await openFor(config);
  try {
    const handler = adminHandler(await localContext(db));
    lock?.serve(handler);
    const response = await handler(request);
    // Commands forwarded to us meanwhile finish before the database closes.
    await lock?.drain();
    return response;
  } finally {
    await db.close();
    await lock?.release();
  }
}

async function runEmbedded(dataDir: string, request: AdminRequest): Promise<AdminResponse> {
  for (;;) {
    const acquired = await DataDirLock.acquire(dataDir, 'cli');
    if ('lock' in acquired) return runOn({ databaseUrl: undefined, dataDir }, request, acquired.lock);
    const response = await forward(acquired.holder, request);
    if (response) return response;
    await delay(RETRY_MS);
  }
}

/** Reads the holder's greeting; undefined when it closed first (it is stopping: nothing ran). */
async function greetingOf(holder: Socket, next: () => Promise<unknown>): Promise<Greeting | undefined> {
  const line = await next();
  if (line === undefined) return undefined;
  const parsed = greeting.safeParse(line);
  if (parsed.success) return parsed.data;
  holder.destroy();
  throw new AdminCommandError(`${holder.remoteAddress ?? 'the admin socket'} is not a Cairn admin socket`);
}

/** Sends the request to the data dir's holder; undefined when the holder went away before greeting. */
async function forward(holder: Socket, request: AdminRequest): Promise<AdminResponse | undefined> {
  const lines = lineReader(holder);
  try {
    const hello = await greetingOf(holder, lines.next);
    if (!hello) return undefined;
    writeLine(holder, request);
    const response = adminResponse.safeParse(await lines.next());
    if (response.success) return response.data;
    throw new AdminCommandError(
      `the Cairn ${hello.owner} (pid ${hello.pid}) holding the data dir stopped before answering; the command may not have run (check with \`cairn keys list\`)`,
    );
  } finally {
    holder.destroy();
  }
}

/**
 * The embedded server takes the data dir before opening PGlite: it waits while a CLI holds it,
 * and refuses to start while another server does.
 */
export async function lockDataDirForServer(dataDir: string): Promise<DataDirLock> {
  for (;;) {
    const acquired = await DataDirLock.acquire(dataDir, 'server');
    if ('lock' in acquired) return acquired.lock;
    const lines = lineReader(acquired.holder);
    const hello = await greetingOf(acquired.holder, lines.next).finally(() => acquired.holder.destroy());
    if (hello?.owner === 'server') {
      throw new AdminCommandError(`another Cairn server (pid ${hello.pid}) is using ${dataDir}; stop it or set a different CAIRN_DATA_DIR`);
    }
    await delay(RETRY_MS);
  }
}
