/**
 * Why a local transformers.js model did not load, told apart from the library's error, so the
 * message names the real cause (no network, no such model, downloads off) and the fixes that apply.
 */
export type LoadFailureCause = 'network' | 'not_found' | 'downloads_disabled' | 'other';

export interface LoadFailure {
  cause: LoadFailureCause;
  /** What went wrong, in words, with the library's own message in parentheses. */
  reason: string;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ENETUNREACH', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

/** The first network error code in the cause chain (undici wraps the socket error in `cause`). */
function networkCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
  }
  return undefined;
}

export function classifyLoadFailure(error: unknown, files: { modelsDir?: string }): LoadFailure {
  const message = error instanceof Error ? error.message : String(error);
  const where = files.modelsDir ? `CAIRN_MODELS_DIR (${files.modelsDir})` : 'a models directory (CAIRN_MODELS_DIR is unset)';
  const code = networkCode(error);
  if (code || /fetch failed/i.test(message)) {
    return { cause: 'network', reason: `its files are not in ${where}, and the Hugging Face hub cannot be reached to download them (${code ?? message})` };
  }
  if (/not found locally/.test(message)) {
    return { cause: 'downloads_disabled', reason: `its files are not in ${where}, and downloads are disabled (${message})` };
  }
  if (/Could not locate file/.test(message)) {
    return { cause: 'not_found', reason: `the Hugging Face hub has no such model, or none with ONNX weights for transformers.js (${message})` };
  }
  return { cause: 'other', reason: `loading failed (${message})` };
}
