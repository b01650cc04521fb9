/** The admin commands of the `cairn` CLI (`migrate`, `keys …`, `projects …`): parse, run through the admin channel, print. */
import { type Command, InvalidArgumentError } from 'commander';
import { AdminCommandError, runAdminCommand } from '../admin/admin-client.ts';
import type { AdminCommandName, AdminInput, AdminResult } from '../admin/admin-commands.ts';
import { DataDirLockError } from '../admin/data-dir-lock.ts';
import type { Config } from '../config.ts';

/** A limit on the command line: a positive integer, or `none` to clear it (inherit again). */
type LimitArgument = number | 'none';
function limitParser(max: number): (value: string) => LimitArgument {
  return (value) => {
    if (value === 'none') return value;
    const number = Number(value);
    if (!Number.isSafeInteger(number) || number < 1 || number > max) {
      throw new InvalidArgumentError(`expected a positive integer up to ${max}, or "none"`);
    }
    return number;
  };
}
/** Rates are stored as SQL `integer`, byte quotas as `bigint`. */
const limitValue = limitParser(2_147_483_647);
const byteLimitValue = limitParser(Number.MAX_SAFE_INTEGER);

/** The stored form: null clears a limit, undefined leaves it as it is. */
function limitUpdate(value: LimitArgument | undefined): number | null | undefined {
  return value === 'none' ? null : value;
}

function describeLimit(value: LimitArgument | undefined): string {
  if (value === undefined) return 'unchanged';
  return value === 'none' ? 'inherited' : String(value);
}

export function registerAdminCommands(program: Command, loadConfig: () => Config): void {
  /** Runs the command where the data lives; a failure is one line on stderr and exit code 1. */
  const admin = async <Name extends AdminCommandName>(name: Name, input: AdminInput<Name>, print: (result: AdminResult<Name>) => string) => {
    try {
      process.stdout.write(print(await runAdminCommand(loadConfig(), name, input)));
    } catch (error) {
      if (!(error instanceof AdminCommandError || error instanceof DataDirLockError)) throw error;
      process.stderr.write(`cairn: ${error.message}\n`);
      process.exitCode = 1;
    }
  };

  program
    .command('migrate')
    .description('apply database migrations')
    .action(() =>
      admin('migrate', {}, ({ applied }) => (applied.length > 0 ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n')),
    );

  const keys = program.command('keys').description('manage API keys (embedded: carried out by the running server, if one runs)');
  keys
    .command('create')
    .requiredOption('--project <name>', 'project the key belongs to (created if new)')
    .option('--name <name>', 'a label for the key')
    .option('--rpm <n>', "requests per minute (default: the project's limit)", limitValue)
    .option('--tpm <n>', "tokens per minute (default: the project's limit)", limitValue)
    .description('create a key; it is printed once, alone on the last line')
    .action((options: { project: string; name?: string; rpm?: LimitArgument; tpm?: LimitArgument }) =>
      admin(
        'keys.create',
        { project: options.project, name: options.name, rpm: limitUpdate(options.rpm) ?? undefined, tpm: limitUpdate(options.tpm) ?? undefined },
        ({ key, info }) => `Created ${info.id} for project ${info.projectName}. Store the key now; it is not shown again.\n${key}\n`,
      ),
    );
  keys
    .command('limits')
    .argument('<key-id>', 'the key id shown by `cairn keys list`')
    .option('--rpm <n>', 'requests per minute, or "none" to inherit the project\'s', limitValue)
    .option('--tpm <n>', 'tokens per minute, or "none" to inherit the project\'s', limitValue)
    .description("set a key's rate limits (other API replicas apply them within CAIRN_AUTH_CACHE_TTL_MS)")
    .action((keyId: string, options: { rpm?: LimitArgument; tpm?: LimitArgument }) =>
      admin(
        'keys.limits',
        { keyId, rpm: limitUpdate(options.rpm), tpm: limitUpdate(options.tpm) },
        () => `limits of ${keyId}: rpm ${describeLimit(options.rpm)}, tpm ${describeLimit(options.tpm)}\n`,
      ),
    );
  keys
    .command('list')
    .option('--project <name>', 'only this project')
    .description('list keys (redacted)')
    .action((options: { project?: string }) =>
      admin('keys.list', { project: options.project }, ({ keys: listed }) =>
        listed
          .map((key) => {
            const state = key.revokedAt ? `revoked ${key.revokedAt}` : 'active';
            const limits = `rpm=${key.limits.rpm ?? 'project'} tpm=${key.limits.tpm ?? 'project'}`;
            return `${key.id}\t${key.projectName}\t${key.redacted}\t${key.name ?? ''}\t${limits}\t${state}\n`;
          })
          .join(''),
      ),
    );
  keys
    .command('revoke')
    .argument('<key-id>', 'the key id shown by `cairn keys list`')
    .description('revoke a key; requests with it are refused from now on')
    .action((keyId: string) => admin('keys.revoke', { keyId }, () => `revoked ${keyId}\n`));

  program
    .command('projects')
    .description('manage projects')
    .command('limits')
    .argument('<project>', 'the project name (created if new)')
    .option('--rpm <n>', 'requests per minute for its keys, or "none" for the server default', limitValue)
    .option('--tpm <n>', 'tokens per minute for its keys, or "none" for the server default', limitValue)
    .option('--storage-bytes <n>', 'storage quota (bytes of files), or "none" for the server default', byteLimitValue)
    .description("set a project's default rate limits and its storage quota")
    .action((project: string, options: { rpm?: LimitArgument; tpm?: LimitArgument; storageBytes?: LimitArgument }) =>
      admin(
        'projects.limits',
        { project, rpm: limitUpdate(options.rpm), tpm: limitUpdate(options.tpm), storageBytes: limitUpdate(options.storageBytes) },
        () =>
          `limits of project ${project}: rpm ${describeLimit(options.rpm)}, tpm ${describeLimit(options.tpm)}, storage ${describeLimit(options.storageBytes)}\n`,
      ),
    );
}
