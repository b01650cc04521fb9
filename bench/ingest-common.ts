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

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ, 100 on every mainstream Linux build

/** user+sys CPU ms of a process (all threads), plus that of its reaped children when `withChildren`; NaN if gone. */
export function cpuMs(pid: number | undefined, withChildren = false): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
    const ticks = Number(fields[11]) + Number(fields[12]) + (withChildren ? Number(fields[13]) + Number(fields[14]) : 0);
    return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

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
