/**
 * English stop words for BM25: Lucene's `EnglishAnalyzer.ENGLISH_STOP_WORDS_SET` (33 words), the
 * list behind the Anserini BM25 baselines Cairn compares itself with (BEIR SciFact nDCG@10 0.679).
 * A short list on purpose: Qdrant's IDF already gives frequent words almost no weight, while longer
 * lists (NLTK's 179) also drop words that carry meaning in a query: "after", "against", "between", "few".
 */
export const ENGLISH_STOP_WORDS: ReadonlySet<string> = new Set([
  'a', 'an', 'and', 'are', 'as', 'at', 'be', 'but', 'by', 'for', 'if', 'in', 'into', 'is', 'it',
  'no', 'not', 'of', 'on', 'or', 'such', 'that', 'the', 'their', 'then', 'there', 'these', 'they',
  'this', 'to', 'was', 'will', 'with',
  // Not in Lucene's list: the tokenizer splits "cell's" into "cell" + "s", where Lucene's
  // EnglishPossessiveFilter drops the "'s"; dropping the orphan "s" has the same effect.
  's',
]);
