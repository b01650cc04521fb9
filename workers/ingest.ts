/**
 * The BullMQ ingestion worker (`cairn worker`, `npm run worker`). Run as many as you like: each
 * takes jobs from Redis, runs the ingestion pipeline and writes to the same Postgres and Qdrant.
 */
import type { Config } from '../src/config.ts';
import type { Logger } from 'pino';
import { BullIngestWorker } from '../src/queue/bullmq-queue.ts';
import { createServices } from '../src/services.ts';

export async function runWorker(config: Config, logger: Logger): Promise<{ stop(): Promise<void> }> {
  if (!config.redisUrl || !config.qdrantUrl || !config.databaseUrl) {
    throw new Error(
      'cairn worker needs REDIS_URL, QDRANT_URL and DATABASE_URL (server mode). In the embedded default the API process runs ingestion itself.',
    );
  }
  const services = await createServices(config, logger, 'worker');
  const worker = new BullIngestWorker(config.redisUrl, services.pipeline.handle, logger, {
    queueName: config.ingest.queueName,
    concurrency: config.ingest.concurrency,
    lockDurationMs: config.ingest.workerLockMs,
  });
  logger.info({ concurrency: config.ingest.concurrency }, 'ingestion worker started');
  return {
    async stop() {
      await worker.close();
      await services.close();
    },
  };
}
