import { pino, type DestinationStream, type Logger } from 'pino';

/** JSON logs. Anything that could hold a secret is redacted even if a caller logs it by mistake. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
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
