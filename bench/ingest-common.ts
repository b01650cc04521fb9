/**
 * Shared by bench/ingest.ts and its children: the SciFact corpus as files, and small /proc readers.
 *
 * One document per file: `<_id>.txt` holding `title + "\n\n" + text`, the way a user would drop a
 * folder of abstracts into a knowledge base. The in-process baseline reads the very same bytes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(BENCH_DIR, '..');
/** `../shared/datasets/scifact/corpus.jsonl`, relative to the repository. */
export const DEFAULT_CORPUS = path.resolve(REPO_ROOT, '../shared/datasets/scifact/corpus.jsonl');

export interface CorpusFile {
  id: string;
  filename: string;
  bytes: Buffer;
}

/** The first `limit` documents of a BEIR corpus.jsonl (`{"_id","title","text"}` per line), one file each. */
export function loadCorpus(file: string, limit = Number.POSITIVE_INFINITY): CorpusFile[] {
  const files: CorpusFile[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (files.length >= limit) break;
    if (!line.trim()) continue;
    const doc = JSON.parse(line) as { _id: string; title?: string; text?: string };
    files.push({ id: doc._id, filename: `${doc._id}.txt`, bytes: Buffer.from(`${doc.title ?? ''}\n\n${doc.text ?? ''}`, 'utf8') });
  }
  return files;
}


export { cpuMs } from './report.ts';

/** A `/proc/<pid>/status` field in kB (VmHWM = peak RSS, VmRSS = current RSS). */
export function statusKb(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): number {
  if (pid === undefined) return Number.NaN;
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}
