/** The one place where failures become OpenAI's error envelope. */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { ApiError, NotFoundError, PayloadTooLargeError, InvalidRequestError, errorBody } from '../errors.ts';
import { context } from './context.ts';

/** body-parser's errors carry a `type` and an HTTP status of their own. */
function fromBodyParser(error: { type?: string; status?: number; limit?: number }): ApiError | undefined {
  switch (error.type) {
    case 'entity.parse.failed':
      return new InvalidRequestError(
        'We could not parse the JSON body of your request. (HINT: This likely means you aren\'t using your HTTP library correctly.)',
      );
    case 'entity.too.large':
      return new PayloadTooLargeError(`Request body is larger than the limit of ${error.limit} bytes.`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ApiError(415, 'invalid_request_error', 'Unsupported content encoding or charset.');
    case 'request.aborted':
      return new InvalidRequestError('The request body was not fully received.');
    default:
      return undefined;
  }
}

/** PostgreSQL refuses NUL characters and unpaired surrogates in text: the input's fault, not the server's. */
const UNSTORABLE_TEXT_CODES = new Set(['22021', '22P05']);

export function toApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  if (!error || typeof error !== 'object') return undefined;
  const known = 'type' in error ? fromBodyParser(error as { type?: string }) : undefined;
  if (known) return known;
  const { code, status } = error as { code?: unknown; status?: unknown };
  if (typeof code === 'string' && UNSTORABLE_TEXT_CODES.has(code)) {
    return new InvalidRequestError('The request contains text that cannot be stored (a NUL character or an unpaired surrogate).');
  }
  // Errors from express and its parsers that already name a client error (bad %-encoding, bad gzip).
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new ApiError(status, 'invalid_request_error', status === 400 ? 'The request could not be read.' : (error as Error).message);
  }
  return undefined;
}

export function notFound(): RequestHandler {
  return (req) => {
    throw new NotFoundError(`Invalid URL (${req.method} ${req.path})`);
  };
}

export function methodNotAllowed(allowed: string[]): RequestHandler {
  return (req, res) => {
    res.setHeader('allow', allowed.join(', '));
    throw new ApiError(405, 'invalid_request_error', `Method ${req.method} is not allowed on ${req.baseUrl}${req.path}; use ${allowed.join(' or ')}.`);
  };
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error, _req, res, _next) => {
    const known = toApiError(error);
    const apiError = known ?? new ApiError(500, 'server_error', 'The server had an error while processing your request.');
    if (!known) logger.error({ err: error, requestId: context(res).requestId }, 'unhandled error');
    if (res.headersSent) {
      // A response already under way (a stream) cannot change its status; end it rather than hang.
      res.end();
      return;
    }
    res.status(apiError.status).set(apiError.headers).json(errorBody(apiError));
  };
}
