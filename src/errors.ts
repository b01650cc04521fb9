/**
 * Typed errors. Each one knows its HTTP status and OpenAI error `type`/`code`;
 * the single error middleware (http/error-handler.ts) turns them into OpenAI's envelope.
 */
export interface ApiErrorOptions {
  param?: string | null;
  code?: string | null;
  headers?: Record<string, string>;
  cause?: unknown;
}

export class ApiError extends Error {
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Record<string, string>;

  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    options: ApiErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.headers = options.headers ?? {};
  }
}

export class InvalidRequestError extends ApiError {
  constructor(message: string, options: ApiErrorOptions = {}) {
    super(400, 'invalid_request_error', message, options);
  }
}

export class AuthenticationError extends ApiError {
  constructor(message = 'Incorrect API key provided. You can create keys with `cairn keys create`.') {
    super(401, 'invalid_request_error', message, { code: 'invalid_api_key' });
  }
}

export class NotFoundError extends ApiError {
  constructor(message: string, options: ApiErrorOptions = {}) {
    super(404, 'invalid_request_error', message, options);
  }
}

export class PayloadTooLargeError extends ApiError {
  constructor(message: string, options: ApiErrorOptions = {}) {
    super(413, 'invalid_request_error', message, options);
  }
}

export class RateLimitError extends ApiError {
  constructor(message: string, options: ApiErrorOptions = {}) {
    super(429, 'rate_limit_exceeded', message, { code: 'rate_limit_exceeded', ...options });
  }
}

/** The server failed in a way the request cannot fix (e.g. a file whose stored bytes are gone). */
export class ServerError extends ApiError {
  constructor(message: string, options: ApiErrorOptions = {}) {
    super(500, 'server_error', message, options);
  }
}

/** The upstream model server failed (connection refused, reset, 5xx) after retries and fallbacks. */
export class UpstreamError extends ApiError {
  constructor(message: string, options: ApiErrorOptions = {}) {
    super(502, 'upstream_error', message, { code: 'upstream_error', ...options });
  }
}

export class ServiceUnavailableError extends ApiError {
  constructor(message: string, options: ApiErrorOptions = {}) {
    super(503, 'service_unavailable', message, { code: 'service_unavailable', ...options });
  }
}

export class UpstreamTimeoutError extends ApiError {
  constructor(message: string, options: ApiErrorOptions = {}) {
    super(504, 'timeout', message, { code: 'upstream_timeout', ...options });
  }
}

/** OpenAI's error envelope. */
export function errorBody(error: ApiError): { error: { message: string; type: string; param: string | null; code: string | null } } {
  return { error: { message: error.message, type: error.type, param: error.param, code: error.code } };
}
