/** The `cairn` command: serve | worker | migrate | keys | ingest | eval. */
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig, ConfigError, type Config } from './config.ts';
import { createLogger } from './logger.ts';
import { runWorker } from '../workers/ingest.ts';
import { CliError, reportCliError } from './cli/cli-error.ts';
import { runEvalCommand } from './cli/eval-command.ts';
import { runIngest } from './cli/ingest-command.ts';
import { startServer } from './server.ts';
import { createServices } from './services.ts';
import { ApiKeyStore } from './store/api-keys.ts';
import { openDatabase, type Database } from './store/database.ts';
import { migrate } from './store/migrations.ts';

function configOrExit(): Config {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`cairn: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

/** For the short admin commands: open the database, make sure it is migrated, run, close. */
async function withDatabase<T>(work: (db: Database) => Promise<T>, { migrateFirst = true } = {}): Promise<T> {
  const config = configOrExit();
  const db = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: 2,
    onError: () => undefined,
  });
  try {
    if (migrateFirst) await migrate(db);
    return await work(db);
  } finally {
    await db.close();
  }
}

async function serve(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config.logLevel);
  const services = await createServices(config, logger);
  if (config.embedded && (await services.keys.countActive()) === 0) {
    const { key } = await services.keys.create('default', 'first key');
    // Printed once to the terminal, never to the log: only its hash is stored.
    process.stdout.write(`\nCreated the first API key for project "default" (shown once, store it now):\n\n  ${key}\n\n`);
  }
  // A port in use (or any failure to listen) must not leave the managed Qdrant or pools behind.
  const running = await startServer(services).catch(async (error: unknown) => {
    await services.close().catch(() => undefined);
    throw error;
  });
  const resumed = await services.resumeIngestion();
  if (resumed > 0) logger.info({ files: resumed }, 'resumed ingestion of files left in progress');
  logger.info({ url: running.url, embedded: config.embedded, models: services.modelRegistry.list().map((m) => m.id) }, 'cairn listening');
  stopOnSignals(logger, () => running.stop());
}

function stopOnSignals(logger: ReturnType<typeof createLogger>, stop: () => Promise<void>): void {
  const shutdown = (signal: string): void => {
    logger.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

const program = new Command('cairn')
  .description('OpenAI-compatible inference API with built-in knowledge bases')
  .option('--verbose', 'print the stack trace of an error, not just its one-line summary', false);

program.command('serve').description('run the API server').action(serve);

program
  .command('worker')
  .description('run a BullMQ ingestion worker (server mode: REDIS_URL, QDRANT_URL, DATABASE_URL)')
  .action(async () => {
    const config = configOrExit();
    const logger = createLogger(config.logLevel);
    const worker = await runWorker(config, logger);
    stopOnSignals(logger, () => worker.stop());
  });

program
  .command('ingest')
  .description('sync files or folders into a knowledge base of a running Cairn: unchanged files are skipped, changed ones replaced')
  .argument('<paths...>', 'files or folders (walked recursively, dotfiles skipped)')
  .requiredOption('--kb <id-or-name>', 'knowledge base id or name')
  .option('--create', 'create the knowledge base if it does not exist', false)
  .option('--delete', 'detach files ingested from these folders that are no longer in them', false)
  .option('--embedding-model <id>', 'embedding model of a knowledge base created with --create')
  .option('--base-url <url>', 'Cairn API base URL (default: CAIRN_BASE_URL or http://127.0.0.1:8080/v1)', process.env.CAIRN_BASE_URL ?? 'http://127.0.0.1:8080/v1')
  .option('--api-key <key>', 'API key (default: CAIRN_API_KEY or OPENAI_API_KEY)')
  .option('--concurrency <n>', 'uploads at once', (value) => Number.parseInt(value, 10), 4)
  .action(async (paths: string[], options: { kb: string; create: boolean; delete: boolean; embeddingModel?: string; baseUrl: string; apiKey?: string; concurrency: number }) => {
    const apiKey = options.apiKey ?? process.env.CAIRN_API_KEY ?? process.env.OPENAI_API_KEY;
    if (!apiKey) throw new CliError('no API key: pass --api-key or set CAIRN_API_KEY (make one with `cairn keys create`)', 2);
    const { failed, kbId } = await runIngest(paths, { ...options, apiKey });
    if (failed > 0) throw new CliError(`${failed} file(s) failed; see GET /v1/knowledge_bases/${kbId}/files?filter=failed for why`);
  });

program
  .command('migrate')
  .description('apply database migrations')
  .action(() =>
    withDatabase(async (db) => {
      const applied = await migrate(db);
      process.stdout.write(applied.length > 0 ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
    }, { migrateFirst: false }),
  );

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

const keys = program.command('keys').description('manage API keys');
keys
  .command('create')
  .requiredOption('--project <name>', 'project the key belongs to (created if new)')
  .option('--name <name>', 'a label for the key')
  .option('--rpm <n>', "requests per minute (default: the project's limit)", limitValue)
  .option('--tpm <n>', "tokens per minute (default: the project's limit)", limitValue)
  .description('create a key; it is printed once, alone on the last line')
  .action((options: { project: string; name?: string; rpm?: LimitArgument; tpm?: LimitArgument }) =>
    withDatabase(async (db) => {
      const limits = { rpm: limitUpdate(options.rpm) ?? undefined, tpm: limitUpdate(options.tpm) ?? undefined };
      const { key, info } = await new ApiKeyStore(db).create(options.project, options.name, limits);
      process.stdout.write(`Created ${info.id} for project ${info.projectName}. Store the key now; it is not shown again.\n${key}\n`);
    }),
  );
keys
  .command('limits')
  .argument('<key-id>', 'the key id shown by `cairn keys list`')
  .option('--rpm <n>', 'requests per minute, or "none" to inherit the project\'s', limitValue)
  .option('--tpm <n>', 'tokens per minute, or "none" to inherit the project\'s', limitValue)
  .description("set a key's rate limits (running servers apply them within CAIRN_AUTH_CACHE_TTL_MS)")
  .action((keyId: string, options: { rpm?: LimitArgument; tpm?: LimitArgument }) =>
    withDatabase(async (db) => {
      if (!(await new ApiKeyStore(db).setKeyLimits(keyId, { rpm: limitUpdate(options.rpm), tpm: limitUpdate(options.tpm) }))) {
        process.stderr.write(`cairn: no key with id ${keyId}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`limits of ${keyId}: rpm ${describeLimit(options.rpm)}, tpm ${describeLimit(options.tpm)}\n`);
    }),
  );
keys
  .command('list')
  .option('--project <name>', 'only this project')
  .description('list keys (redacted)')
  .action((options: { project?: string }) =>
    withDatabase(async (db) => {
      for (const key of await new ApiKeyStore(db).list(options.project)) {
        const state = key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : 'active';
        const limits = `rpm=${key.limits.rpm ?? 'project'} tpm=${key.limits.tpm ?? 'project'}`;
        process.stdout.write(`${key.id}\t${key.projectName}\t${key.redacted}\t${key.name ?? ''}\t${limits}\t${state}\n`);
      }
    }),
  );
keys
  .command('revoke')
  .argument('<key-id>', 'the key id shown by `cairn keys list`')
  .description('revoke a key; requests with it are refused from now on')
  .action((keyId: string) =>
    withDatabase(async (db) => {
      if (!(await new ApiKeyStore(db).revoke(keyId))) {
        process.stderr.write(`cairn: no active key with id ${keyId}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`revoked ${keyId}\n`);
    }),
  );

function describeLimit(value: LimitArgument | undefined): string {
  if (value === undefined) return 'unchanged';
  return value === 'none' ? 'inherited' : String(value);
}

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
    withDatabase(async (db) => {
      await new ApiKeyStore(db).setProjectLimits(project, {
        rpm: limitUpdate(options.rpm),
        tpm: limitUpdate(options.tpm),
        storageQuotaBytes: limitUpdate(options.storageBytes),
      });
      process.stdout.write(
        `limits of project ${project}: rpm ${describeLimit(options.rpm)}, tpm ${describeLimit(options.tpm)}, storage ${describeLimit(options.storageBytes)}\n`,
      );
    }),
  );

program
  .command('eval')
  .description('measure retrieval quality of a running Cairn')
  .command('beir')
  .description('ingest a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/test.tsv) and report nDCG@10, Recall@10/100, MRR@10, latency')
  .argument('<dir>', 'the dataset directory')
  .option('--base-url <url>', 'Cairn API base URL (default CAIRN_BASE_URL or http://127.0.0.1:8080/v1)')
  .option('--api-key <key>', 'API key (default: CAIRN_API_KEY or OPENAI_API_KEY)')
  .option('--modes <list>', 'lexical, hybrid or lexical,hybrid', 'lexical,hybrid')
  .option('--embedding-model <id>', 'embedding model of the hybrid knowledge base (default: the server default)')
  .option('--limit-queries <n>', 'evaluate only the first n test queries', (value) => Number.parseInt(value, 10))
  .option('--keep', 'keep the knowledge bases and files afterwards', false)
  .action((dir: string, options: { baseUrl?: string; apiKey?: string; modes: string; embeddingModel?: string; limitQueries?: number; keep: boolean }) =>
    runEvalCommand(dir, options),
  );

// Every command fails the same way: one line with the fix, exit code ≠ 0, the stack only with --verbose.
try {
  await program.parseAsync(process.argv);
} catch (error) {
  const verbose = program.opts<{ verbose?: boolean }>().verbose === true || process.argv.includes('--verbose');
  process.exit(reportCliError(error, verbose));
}
