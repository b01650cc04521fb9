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

export function toApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  if (error && typeof error === 'object' && 'type' in error) return fromBodyParser(error as { type?: string });
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
