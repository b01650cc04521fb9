/**
 * Ranking metrics as BEIR reports them (BEIR's `EvaluateRetrieval.evaluate` calls pytrec_eval,
 * which bundles trec_eval 9.0.5; MRR@k is BEIR's own `mrr`). Pure functions over one query:
 * `ranked` is the system's document ids, best first, without duplicates; `relevance` is that
 * query's qrels (document id → grade). Grades ≤ 0 mean "judged not relevant".
 *
 * nDCG@k is trec_eval's `ndcg_cut.k`:
 *   DCG@k  = Σ_{r=1..min(k, |ranked|)} rel(ranked[r]) / log2(r + 1)   (only grades > 0 count)
 *   IDCG@k = the same sum over the query's positive grades sorted descending, cut at k
 *   nDCG@k = DCG@k / IDCG@k, and 0 when the query has no positive grade.
 * The gain is the grade itself (linear), not 2^rel − 1: trec_eval's m_ndcg_cut.c adds
 * `gain / log2(i + 2)` with `gain` = the qrels relevance value, and pytrec_eval's own tests
 * expect 1/log2(3) = 0.6309… for a single relevant document at rank 2. (trec_eval 8 and the
 * original Järvelin–Kekäläinen formulation left rank 2 undiscounted; 9.x does not.)
 */

function requireCutoff(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
}

/** Documents must appear once: a run (as pytrec_eval takes it) maps each document to one score. */
function topK(ranked: readonly string[], k: number): readonly string[] {
  requireCutoff(k);
  if (new Set(ranked).size !== ranked.length) throw new RangeError('ranked contains a document id more than once');
  return ranked.slice(0, k);
}

const gain = (relevance: ReadonlyMap<string, number>, id: string): number => Math.max(0, relevance.get(id) ?? 0);

/** Position r (1-based) is discounted by log2(r + 1): rank 1 by 1, rank 2 by 1.585, rank 3 by 2. */
const discount = (rank: number): number => Math.log2(rank + 1);

export function ndcgAtK(ranked: readonly string[], relevance: ReadonlyMap<string, number>, k: number): number {
  const top = topK(ranked, k);
  let dcg = 0;
  top.forEach((id, i) => {
    dcg += gain(relevance, id) / discount(i + 1);
  });
  const ideal = [...relevance.values()].filter((grade) => grade > 0).sort((a, b) => b - a).slice(0, k);
  let idcg = 0;
  ideal.forEach((grade, i) => {
    idcg += grade / discount(i + 1);
  });
  return idcg > 0 ? dcg / idcg : 0;
}

/** trec_eval's `recall.k`: relevant documents (grade > 0) in the top k / all relevant documents; 0 when there are none. */
export function recallAtK(ranked: readonly string[], relevance: ReadonlyMap<string, number>, k: number): number {
  const top = topK(ranked, k);
  const relevant = [...relevance.values()].filter((grade) => grade > 0).length;
  if (relevant === 0) return 0;
  return top.filter((id) => gain(relevance, id) > 0).length / relevant;
}

/** BEIR's MRR@k: 1 / rank of the first relevant document (grade > 0) within the top k, else 0. */
export function mrrAtK(ranked: readonly string[], relevance: ReadonlyMap<string, number>, k: number): number {
  const first = topK(ranked, k).findIndex((id) => gain(relevance, id) > 0);
  return first < 0 ? 0 : 1 / (first + 1);
}

/**
 * The p-th percentile (0 ≤ p ≤ 100) by linear interpolation between the closest ranks (Hyndman
 * and Fan's type 7, numpy's and Excel's PERCENTILE default): with the n values sorted ascending,
 * h = (n − 1)·p/100 and the result is v[⌊h⌋] + (h − ⌊h⌋)·(v[⌊h⌋+1] − v[⌊h⌋]).
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new RangeError('percentile of an empty list');
  if (!(p >= 0 && p <= 100)) throw new RangeError(`p must be between 0 and 100, got ${p}`);
  if (values.some((value) => Number.isNaN(value))) throw new RangeError('percentile of a list containing NaN');
  const sorted = [...values].sort((a, b) => a - b);
  const h = ((sorted.length - 1) * p) / 100;
  const lower = Math.floor(h);
  const below = sorted[lower]!;
  const above = sorted[Math.min(lower + 1, sorted.length - 1)]!;
  return below + (h - lower) * (above - below);
}

/** The arithmetic mean. */
export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('mean of an empty list');
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}
