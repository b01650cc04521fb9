/**
 * Turns whatever an upstream answered with (OpenAI's envelope, vLLM's `{"object":"error",…}`,
 * plain text) into one of Cairn's typed errors, so the client always sees OpenAI's envelope.
 */
import { redactApiKey } from '../embeddings/upstream-messages.ts';
import { ApiError, InvalidRequestError, RateLimitError, UpstreamError } from '../errors.ts';

function upstreamMessage(bodyText: string): { message: string; param: string | null; code: string | null } {
  try {
    const body = JSON.parse(bodyText) as Record<string, unknown>;
    const error = (body.error && typeof body.error === 'object' ? body.error : body) as Record<string, unknown>;
    const message = typeof error.message === 'string' ? error.message : typeof body.detail === 'string' ? body.detail : bodyText;
    const param = typeof error.param === 'string' ? error.param : null;
    // vLLM puts the numeric status in `code`; OpenAI puts a string code there.
    const code = typeof error.code === 'string' ? error.code : null;
    return { message, param, code };
  } catch {
    return { message: bodyText.slice(0, 500) || 'no error message', param: null, code: null };
  }
}

/** `apiKey`: the key Cairn sent to this upstream; an upstream may echo it in its error, which reaches the client. */
export function normaliseUpstreamError(
  status: number,
  bodyText: string,
  modelId: string,
  retryAfter: string | undefined,
  apiKey?: string,
): ApiError {
  const redact = (text: string): string => redactApiKey(text, apiKey);
  const quoted = upstreamMessage(redact(bodyText));
  // Again after parsing: a JSON escape (\u0073k-…) hides the key from the first pass.
  const message = redact(quoted.message);
  const param = quoted.param && redact(quoted.param);
  const code = quoted.code && redact(quoted.code);
  if (status === 429) {
    return new RateLimitError(`Model ${modelId} is overloaded: ${message}`, {
      headers: retryAfter ? { 'retry-after': retryAfter } : {},
    });
  }
  if (status === 400 || status === 422) return new InvalidRequestError(message, { param, code });
  if (status === 413) return new ApiError(413, 'invalid_request_error', message, { param, code });
  if (status === 503 || status === 504) {
    return new ApiError(status, 'upstream_error', `Model ${modelId} upstream answered ${status}: ${message}`, { code: 'upstream_error' });
  }
  // 401/403 from an upstream are Cairn's configuration problem, not the caller's: report a bad gateway,
  // without the upstream's text (it may echo the credentials Cairn sent).
  if (status === 401 || status === 403) return new UpstreamError(`Model ${modelId} upstream refused Cairn's credentials (${status}); check the model config.`);
  return new UpstreamError(`Model ${modelId} upstream answered ${status}: ${message}`);
}
