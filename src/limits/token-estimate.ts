/**
 * Tokens a request will use, estimated before it runs so the tokens-per-minute limit can be
 * checked up front (the way OpenAI does it): about four characters per token of input, plus
 * the completion budget the client asked for. The estimate is corrected with the real usage
 * once the response is done.
 */
const CHARS_PER_TOKEN = 4;
/** Real messages are shallow; a hostile body nested deeper is refused by validation later anyway. */
const MAX_DEPTH = 32;

function textTokens(value: unknown, depth = 0): number {
  if (typeof value === 'string') return Math.ceil(value.length / CHARS_PER_TOKEN);
  if (typeof value === 'number') return 1;
  if (depth >= MAX_DEPTH || !value || typeof value !== 'object') return 0;
  // Content parts ({type: "text", text}) and tool calls: count the strings, not the keys.
  const items = Array.isArray(value) ? value : Object.values(value);
  return items.reduce<number>((sum, item) => sum + textTokens(item, depth + 1), 0);
}

function completionBudget(body: Record<string, unknown>): number {
  const budget = body.max_completion_tokens ?? body.max_tokens;
  const choices = typeof body.n === 'number' && body.n > 1 ? body.n : 1;
  return typeof budget === 'number' && Number.isFinite(budget) && budget > 0 ? budget * choices : 0;
}

/** The routes that consume tokens, and how to estimate each; other routes count requests only. */
export function estimateTokens(path: string, body: unknown): number | undefined {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const request = body as Record<string, unknown>;
  // Express routes ignore case and a trailing slash; so must this, or `/Chat/Completions/` would go uncharged.
  switch (path.toLowerCase().replace(/\/+$/, '')) {
    case '/chat/completions':
      return textTokens(request.messages) + completionBudget(request);
    case '/completions':
      return textTokens(request.prompt) + completionBudget(request);
    case '/embeddings':
      return textTokens(request.input);
    default:
      return undefined;
  }
}
