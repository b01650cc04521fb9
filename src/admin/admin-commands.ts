/**
 * Every admin command the CLI can run against a database (keys, projects, migrations), in one
 * registry: the same code runs in the embedded server (sent over its admin socket), in a CLI that
 * holds the data dir, and in a CLI against PostgreSQL. A new command is one entry here.
 * Results are plain JSON, since they may cross the socket.
 */
import { z } from 'zod';
import { ApiError, NotFoundError } from '../errors.ts';
import { parseRequest } from '../http/validate.ts';
import type { ApiKeyInfo, ApiKeyStore } from '../store/api-keys.ts';
import type { AdminHandler } from './data-dir-lock.ts';

export interface AdminContext {
  keys: ApiKeyStore;
  /** Applies pending migrations; returns their names. */
  migrate(): Promise<string[]>;
}

/** Rates are SQL `integer`, byte quotas `bigint`; null clears a limit, absent leaves it. */
const rate = z.number().int().min(1).max(2_147_483_647);
const byteLimit = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const keyId = z.string().min(1).max(200);
const projectName = z.string().min(1).max(200);

export interface KeySummary {
  id: string;
  projectName: string;
  name: string | null;
  redacted: string;
  createdAt: string;
  revokedAt: string | null;
  limits: { rpm?: number; tpm?: number };
}

function summary(info: ApiKeyInfo): KeySummary {
  return {
    id: info.id,
    projectName: info.projectName,
    name: info.name,
    redacted: info.redacted,
    createdAt: info.createdAt.toISOString(),
    revokedAt: info.revokedAt?.toISOString() ?? null,
    limits: info.limits,
  };
}

function command<Input extends z.ZodObject, Result>(input: Input, run: (context: AdminContext, input: z.infer<Input>) => Promise<Result>) {
  return { input, run };
}

export const adminCommands = {
  migrate: command(z.object({}), async (context) => ({ applied: await context.migrate() })),

  'keys.create': command(
    z.object({ project: projectName, name: z.string().max(200).optional(), rpm: rate.optional(), tpm: rate.optional() }),
    async ({ keys }, input) => {
      const { key, info } = await keys.create(input.project, input.name, { rpm: input.rpm, tpm: input.tpm });
      return { key, info: summary(info) };
    },
  ),

  'keys.list': command(z.object({ project: projectName.optional() }), async ({ keys }, input) => ({
    keys: (await keys.list(input.project)).map(summary),
  })),

  'keys.revoke': command(z.object({ keyId }), async ({ keys }, input) => {
    if (!(await keys.revoke(input.keyId))) throw new NotFoundError(`no active key with id ${input.keyId}`);
    return { keyId: input.keyId };
  }),

  'keys.limits': command(
    z.object({ keyId, rpm: rate.nullable().optional(), tpm: rate.nullable().optional() }),
    async ({ keys }, input) => {
      if (!(await keys.setKeyLimits(input.keyId, { rpm: input.rpm, tpm: input.tpm }))) throw new NotFoundError(`no key with id ${input.keyId}`);
      return { keyId: input.keyId };
    },
  ),

  'projects.limits': command(
    z.object({ project: projectName, rpm: rate.nullable().optional(), tpm: rate.nullable().optional(), storageBytes: byteLimit.nullable().optional() }),
    async ({ keys }, input) => {
      const project = await keys.setProjectLimits(input.project, { rpm: input.rpm, tpm: input.tpm, storageQuotaBytes: input.storageBytes });
      return { project: project.name };
    },
  ),
};

export type AdminCommandName = keyof typeof adminCommands;
export type AdminInput<Name extends AdminCommandName> = z.input<(typeof adminCommands)[Name]['input']>;
export type AdminResult<Name extends AdminCommandName> = Awaited<ReturnType<(typeof adminCommands)[Name]['run']>>;

function isCommandName(name: string): name is AdminCommandName {
  return Object.hasOwn(adminCommands, name);
}

/** Runs one request against `context`: a bad request or a known failure becomes an error answer. */
export function adminHandler(context: AdminContext, onUnexpected: (error: unknown) => void = () => undefined): AdminHandler {
  return async ({ command: name, input }) => {
    if (!isCommandName(name)) return { ok: false, error: { message: `unknown admin command "${name}"` } };
    const { input: schema, run } = adminCommands[name] as { input: z.ZodObject; run: (context: AdminContext, input: unknown) => Promise<unknown> };
    try {
      return { ok: true, result: await run(context, parseRequest(schema, input)) };
    } catch (error) {
      if (error instanceof ApiError) return { ok: false, error: { message: error.message } };
      onUnexpected(error);
      return { ok: false, error: { message: `${name} failed: ${(error as Error).message}` } };
    }
  };
}
