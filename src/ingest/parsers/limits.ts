/**
 * Per-format limits on untrusted documents. Each one is checked while the file is read, and a file over
 * one fails with a `last_error` that names the limit, rather than being indexed partially (a silently
 * incomplete knowledge base is worse than a clear refusal). Time and memory are bounded by the worker
 * thread that parses and chunks (see `src/ingest/document-worker-pool.ts`).
 */
export interface FormatLimits {
  /** CSV/TSV: data rows per file (the header not counted). */
  maxCsvRows: number;
  /** JSON/JSONL: scalar values (leaves) per file. */
  maxJsonValues: number;
  /** PDF: pages per file. */
  maxPdfPages: number;
  /** Every format: chunks one file may produce. */
  maxChunks: number;
}

export const DEFAULT_FORMAT_LIMITS: FormatLimits = {
  maxCsvRows: 2_000_000,
  maxJsonValues: 10_000_000,
  maxPdfPages: 5_000,
  maxChunks: 500_000,
};

const formatCount = (count: number): string => count.toLocaleString('en-US');

export function overLimit(what: string, limit: number, unit: string): string {
  return `The ${what} has more than ${formatCount(limit)} ${unit}; Cairn ingests at most ${formatCount(limit)} ${unit} per file`;
}
