/**
 * `cairn eval beir <dir> [--base-url] [--api-key] [--modes lexical,hybrid] [--embedding-model id]
 * [--limit-queries n] [--keep]`: retrieval quality of a running Cairn on a BEIR dataset (see
 * src/eval/beir.ts). Options arrive parsed (commander); this checks them, runs, and prints.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { BEIR_MODES, runBeirEval, type BeirMode } from '../eval/beir.ts';

export interface EvalCommandOptions {
  /** Default: CAIRN_BASE_URL, else http://127.0.0.1:8080/v1. */
  baseUrl?: string;
  /** Default: CAIRN_API_KEY, else OPENAI_API_KEY. */
  apiKey?: string;
  /** `lexical,hybrid` as typed, or already split. Default: both. */
  modes?: string | readonly string[];
  embeddingModel?: string;
  limitQueries?: number;
  keep?: boolean;
  /** Uploads at once. Default 8. */
  concurrency?: number;
}

/** `"lexical,hybrid"` → ['lexical', 'hybrid']; usable as a commander argument parser. */
export function parseModes(value: string | readonly string[]): BeirMode[] {
  const names = (typeof value === 'string' ? value.split(',') : [...value]).map((name) => name.trim()).filter(Boolean);
  if (names.length === 0) throw new Error('--modes is empty: use lexical, hybrid or lexical,hybrid');
  for (const name of names) {
    if (!(BEIR_MODES as readonly string[]).includes(name)) throw new Error(`unknown mode '${name}' in --modes: use lexical, hybrid or lexical,hybrid`);
  }
  return [...new Set(names as BeirMode[])];
}

/**
 * Runs the evaluation and prints a table per mode to `out`. Problems (a missing key, a bad option,
 * an unreachable server, a malformed dataset) are printed as one line to stderr with exit code 2
 * (usage) or 1 (anything else), rather than thrown, so the commander action can be just this call.
 */
export async function runEvalCommand(dir: string, options: EvalCommandOptions, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const apiKey = options.apiKey ?? process.env.CAIRN_API_KEY ?? process.env.OPENAI_API_KEY;
  let modes: BeirMode[];
  try {
    if (!apiKey) throw new Error('pass --api-key or set CAIRN_API_KEY');
    if (!existsSync(path.join(dir, 'corpus.jsonl'))) {
      throw new Error(`no BEIR dataset at ${path.resolve(dir)}: give a directory with corpus.jsonl, queries.jsonl and qrels/test.tsv (e.g. SciFact from the BEIR benchmark)`);
    }
    modes = parseModes(options.modes ?? BEIR_MODES);
  } catch (error) {
    process.stderr.write(`cairn eval: ${(error as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  try {
    const result = await runBeirEval(dir, {
      baseUrl: options.baseUrl ?? process.env.CAIRN_BASE_URL ?? 'http://127.0.0.1:8080/v1',
      apiKey,
      modes,
      embeddingModel: options.embeddingModel,
      limitQueries: options.limitQueries,
      keep: options.keep === true,
      concurrency: options.concurrency ?? 8,
      out,
    });
    if (result.modes.every((mode) => mode.skipped)) {
      process.stderr.write('cairn eval: no mode could be evaluated\n');
      process.exitCode = 1;
    }
  } catch (error) {
    process.stderr.write(`cairn eval: ${(error as Error).message}\n`);
    process.exitCode = error instanceof RangeError ? 2 : 1;
  }
}
