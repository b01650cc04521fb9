/** The `cairn` command: serve | worker | migrate | keys | ingest | eval. */
import { Command } from 'commander';
import { lockDataDirForServer } from './admin/admin-client.ts';
import { adminHandler } from './admin/admin-commands.ts';
import { loadConfig, ConfigError, type Config } from './config.ts';
import { createLogger } from './logger.ts';
import { runWorker } from '../workers/ingest.ts';
import { registerAdminCommands } from './cli/admin-cli.ts';
import { CliError, reportCliError } from './cli/cli-error.ts';
import { runEvalCommand } from './cli/eval-command.ts';
import { runIngest } from './cli/ingest-command.ts';
import { startServer } from './server.ts';
import { createServices } from './services.ts';
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

async function serve(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config.logLevel);
  // Embedded: this process becomes the data dir's one writer; CLI admin commands reach it over its socket.
  const lock = config.embedded ? await lockDataDirForServer(config.dataDir).catch(exitWithMessage) : undefined;
  const services = await createServices(config, logger);
  // The server's own key store: a revocation or new limit clears its auth cache at once.
  lock?.serve(
    adminHandler({ keys: services.keys, migrate: () => migrate(services.db) }, (error) => logger.error({ err: error }, 'admin command failed')),
  );
  // A port in use (or any failure to listen) must not leave the managed Qdrant, pools or the lock behind.
  const running = await startServer(services).catch(async (error: unknown) => {
    await lock?.drain();
    await services.close().catch(() => undefined);
    await lock?.release();
    throw error;
  });
  // Both modes: a first start (or one after every key was revoked) must leave the operator a key.
  // Made once the port is ours, so a start that fails to listen does not spend the one printing.
  const key = await services.keys.createFirstKey('default', 'first key');
  if (key) {
    // Printed once to the terminal, never to the log: only its hash is stored.
    process.stdout.write(`\nCreated the first API key for project "default" (shown once, store it now):\n\n  ${key}\n\n`);
  } else {
    logger.info('API keys are shown only when created; lost yours? `cairn keys create --project default`, then `cairn keys revoke` the old one');
  }
  const resumed = await services.resumeIngestion();
  if (resumed > 0) logger.info({ files: resumed }, 'resumed ingestion of files left in progress');
  // Before the line that tells supervisors (and tests) we are up: pino writes it from another thread,
  // so a SIGTERM sent on reading it could otherwise arrive before the handler exists and kill us outright.
  stopOnSignals(logger, async () => {
    // Admin commands stop before the database closes; the lock is released once it is closed.
    await lock?.drain();
    await running.stop();
    await lock?.release();
  });
  logger.info({ url: running.url, embedded: config.embedded, models: services.modelRegistry.list().map((m) => m.id) }, 'cairn listening');
}

function exitWithMessage(error: Error): never {
  process.stderr.write(`cairn: ${error.message}\n`);
  process.exit(1);
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
    // Handlers first, as in serve: runWorker logs 'ingestion worker started' once it takes jobs.
    const started: { worker?: Awaited<ReturnType<typeof runWorker>> } = {};
    stopOnSignals(logger, async () => started.worker?.stop());
    started.worker = await runWorker(config, logger);
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

registerAdminCommands(program, configOrExit);

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
