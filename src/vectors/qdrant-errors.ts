/** How Qdrant client failures are told apart and described: stale connections, HTTP statuses, no answer at all. */

/**
 * Qdrant closes idle keep-alive connections after about 5 s without saying so, while the client
 * keeps them for 10 s: a request can leave on a connection Qdrant is closing and fail with a
 * socket error. Qdrant never read it, and every call Cairn makes is idempotent (deterministic
 * point ids), so it is sent once more, on a fresh connection.
 */
const STALE_CONNECTION_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

export async function retryOnStaleConnection<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const code = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
    if (typeof code !== 'string' || !STALE_CONNECTION_CODES.has(code)) throw error;
    return run();
  }
}

export function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  if (typeof status === 'number') return status;
  // QdrantClientResourceExhaustedError (429 with retry-after) carries no status.
  return (error as Error | null)?.name === 'QdrantClientResourceExhaustedError' ? 429 : undefined;
}

/** Connection refused/reset, DNS or TLS failure, or our timeout: no HTTP answer at all. */
export function isUnreachable(error: unknown): boolean {
  const { name, message, cause, code } = (error ?? {}) as { name?: string; message?: string; cause?: { code?: unknown }; code?: unknown };
  const errno = cause?.code ?? code;
  return name === 'QdrantClientTimeoutError' || message === 'fetch failed' || (typeof errno === 'string' && /^(E[A-Z]+|UND_ERR_\w+)$/.test(errno));
}

export function describeQdrantError(error: unknown): string {
  const status = statusOf(error);
  const qdrantMessage = (error as { data?: { status?: { error?: unknown } } } | null)?.data?.status?.error;
  if (status !== undefined) return `HTTP ${status}${typeof qdrantMessage === 'string' ? `: ${qdrantMessage}` : ''}`;
  if (!(error instanceof Error)) return String(error);
  if (error.name === 'QdrantClientTimeoutError') return 'no answer before the timeout';
  const cause = error.cause as { code?: string; message?: string } | undefined;
  // The code, not the message: the message names the internal address, and this text reaches clients.
  return cause?.code ? `${error.message} (${cause.code})` : error.message;
}
