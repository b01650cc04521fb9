/** Error text for HTTP model upstreams (remote embedders, rerank servers): their own message, without secrets. */

/** Upstream messages are quoted up to this many characters. */
const UPSTREAM_MESSAGE_LIMIT = 200;

/** The upstream's own error message (OpenAI/Cohere envelopes, TEI `{error}`, or plain text), shortened. */
export function upstreamMessage(text: string): string {
  let message = text.trim();
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown; detail?: unknown };
    const error = body.error as { message?: unknown } | string | undefined;
    const found = typeof error === 'string' ? error : (error?.message ?? body.message ?? body.detail);
    if (typeof found === 'string') message = found;
  } catch {
    // Not JSON: keep the text.
  }
  if (!message) return 'no error message';
  return message.length > UPSTREAM_MESSAGE_LIMIT ? `${message.slice(0, UPSTREAM_MESSAGE_LIMIT)}…` : message;
}

/** `message` with every occurrence of the api key replaced: an upstream may echo request headers back. */
export function redactApiKey(message: string, apiKey: string | undefined): string {
  return apiKey ? message.split(apiKey).join('[redacted]') : message;
}
