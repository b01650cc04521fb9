import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * JSON logs. Anything that could hold a secret is redacted even if a caller logs it by mistake.
 * Writes to stdout are asynchronous so that a request never waits on the terminal or a log pipe;
 * pino flushes them when the process exits.
 */
export function createLogger(level: string, destination: DestinationStream = pino.destination({ dest: 1, sync: false })): Logger {
  return pino(
    {
      level,
      base: { service: 'cairn' },
      redact: {
        paths: [
          'authorization', '*.authorization', '*.headers.authorization', 'headers.authorization',
          'apiKey', '*.apiKey', 'api_key', '*.api_key', '*.*.api_key', 'key', '*.key',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
