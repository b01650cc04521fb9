/**
 * What every client-matrix file drives: a running Cairn whose chat model `llama` is the stub
 * upstream, the tiny local embedding model, and a knowledge base the extractive model answers from.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { toFile } from 'openai';
import { startCairn, stubModel, type TestCairn } from '../helpers/harness.ts';
import { StubUpstream } from '../helpers/stub-upstream.ts';
import { createTinyEmbeddingModel } from '../helpers/tiny-model.ts';

export const HANDBOOK = 'Refunds are issued within 30 days of purchase when the receipt is shown. Parcels ship from Rotterdam every Tuesday.';
/** A question the handbook answers; the extractive model quotes the refund sentence with [1]. */
export const QUESTION = 'How many days do refunds take?';
export const REFUND_SENTENCE = /Refunds are issued within 30 days of purchase when the receipt is shown\. \[1\]/;

export interface ClientFixture {
  cairn: TestCairn;
  upstream: StubUpstream;
  /** `http://127.0.0.1:<port>/v1`, what each client takes as its base URL. */
  baseURL: string;
  apiKey: string;
  kbId: string;
  fileId: string;
  embeddingModel: string;
  dimensions: number;
  stop(): Promise<void>;
}

export async function startClientFixture(): Promise<ClientFixture> {
  const upstream = await StubUpstream.start({ name: 'llm' });
  const modelsDir = await mkdtemp(path.join(tmpdir(), 'cairn-clients-'));
  const tiny = await createTinyEmbeddingModel(modelsDir, { name: 'tiny-minilm' });
  const cairn = await startCairn({
    env: { CAIRN_MODELS_DIR: tiny.modelsDir, CAIRN_EMBEDDING_MODEL: tiny.modelId },
    modelConfig: { models: [stubModel('llama', [upstream.url])] },
  });
  const client = cairn.client();
  const kb = await client.vectorStores.create({ name: 'handbook' });
  const file = await client.vectorStores.files.uploadAndPoll(kb.id, await toFile(Buffer.from(HANDBOOK), 'handbook.txt'));
  if (file.status !== 'completed') throw new Error(`fixture file did not ingest: ${JSON.stringify(file.last_error)}`);
  return {
    cairn,
    upstream,
    baseURL: cairn.baseURL,
    apiKey: cairn.key,
    kbId: kb.id,
    fileId: file.id,
    embeddingModel: tiny.modelId,
    dimensions: tiny.dimensions,
    async stop() {
      await cairn.stop();
      await upstream.close();
      await rm(modelsDir, { recursive: true, force: true });
    },
  };
}
