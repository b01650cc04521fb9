/**
 * Requests Node's HTTP parser refuses before express sees them (a 100 KB URL, oversized headers,
 * malformed HTTP, a request that took too long) get OpenAI's error envelope on the raw socket
 * instead of a connection closed mid-request, which clients report as a reset.
 */
import type { Duplex } from 'node:stream';
import { ApiError, errorBody } from '../errors.ts';

/** How long a refused client may keep sending what is left of its request before the socket is destroyed. */
const DRAIN_MS = 5_000;

interface ParserError extends Error {
  code?: string;
  /** The chunk the parser failed on. */
  rawPacket?: Buffer;
}

/** A `clientError` listener for one HTTP server. */
export function clientErrorAnswerer(): (error: ParserError, socket: Duplex) => void {
  // Sockets already answered: the parser reports an error again for every later chunk of the same request.
  const answered = new WeakSet<Duplex>();
  return (error, socket) => {
    if (answered.has(socket)) return;
    answered.add(socket);
    answer(error, socket);
  };
}

function answer(error: ParserError, socket: Duplex): void {
  // A response already under way on this connection (keep-alive) cannot be followed by another one: close, as Node does.
  const responding = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (error.code === 'ECONNRESET' || !socket.writable || responding) {
    socket.destroy();
    return;
  }
  const apiError = toApiError(error);
  const body = JSON.stringify(errorBody(apiError));
  socket.end(
    `HTTP/1.1 ${apiError.status} ${STATUS_TEXT[apiError.status] ?? 'Bad Request'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
  // Read (and drop) the rest of the request: closing a socket with unread input sends a TCP reset,
  // which can reach the client before our answer does.
  socket.on('data', () => undefined);
  socket.resume();
  setTimeout(() => socket.destroy(), DRAIN_MS).unref();
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 414: 'URI Too Long', 431: 'Request Header Fields Too Large' };

function toApiError(error: ParserError): ApiError {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      // The parser's limit covers the request line and the headers together; a chunk with no line
      // break yet is still the request line, so the URL is what is too long.
      return error.rawPacket && !error.rawPacket.includes('\r\n')
        ? new ApiError(414, 'invalid_request_error', 'The request URL is too long. Ids and query strings must fit in a few kilobytes.', { code: 'uri_too_long' })
        : new ApiError(431, 'invalid_request_error', 'The request headers are too large.', { code: 'request_header_fields_too_large' });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ApiError(408, 'invalid_request_error', 'The request was not received in time.', { code: 'request_timeout' });
    default:
      return new ApiError(400, 'invalid_request_error', 'The request is not valid HTTP/1.1.', { code: 'bad_request' });
  }
}
