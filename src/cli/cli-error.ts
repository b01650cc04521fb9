/**
 * How the `cairn` command reports a failure: one line on stderr that names the problem and the fix,
 * and an exit code ≠ 0. The stack is for `--verbose` only; a newcomer needs the fix, not the frames.
 */
import { ConfigError } from '../config.ts';

/** A failure whose message already says what to do; `exitCode` 2 means "wrong usage". */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

interface SystemError extends Error {
  code?: string;
  address?: string;
  port?: number;
  hostname?: string;
  syscall?: string;
}

/** The operating system's error under `error` (fetch and the pg driver wrap theirs in `cause`). */
function systemError(error: unknown): SystemError | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (typeof (current as SystemError).code === 'string' && /^E[A-Z]+$/.test((current as SystemError).code!)) return current as SystemError;
  }
  return undefined;
}

const where = (error: SystemError): string =>
  error.port !== undefined ? `${error.address ?? error.hostname ?? 'localhost'}:${error.port}` : (error.hostname ?? error.address ?? 'the server');

/** One line (no newline) for any error, and the exit code to leave with. */
export function describeCliError(error: unknown): { line: string; exitCode: number } {
  if (error instanceof CliError) return { line: error.message, exitCode: error.exitCode };
  if (error instanceof ConfigError) return { line: error.message, exitCode: 2 };
  const system = systemError(error);
  switch (system?.code) {
    case 'EADDRINUSE':
      return { line: `port ${system.port ?? '?'} is already in use (${where(system)}): stop the process using it, or set CAIRN_PORT to a free port`, exitCode: 1 };
    case 'EACCES':
      if (system.syscall === 'listen') return { line: `not allowed to listen on ${where(system)}: set CAIRN_PORT to a port above 1023`, exitCode: 1 };
      break;
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ETIMEDOUT':
      return { line: `cannot connect to ${where(system)} (${system.code}): is the service running, and are DATABASE_URL, REDIS_URL and QDRANT_URL right?`, exitCode: 1 };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { line: `${message.split('\n')[0]} (run with --verbose for details)`, exitCode: 1 };
}

/** Prints the line (and, when asked, the stack) and sets the exit code. */
export function reportCliError(error: unknown, verbose: boolean, err: NodeJS.WritableStream = process.stderr): number {
  const { line, exitCode } = describeCliError(error);
  err.write(`cairn: ${line}\n`);
  if (verbose && error instanceof Error && error.stack) err.write(`${error.stack}\n`);
  return exitCode;
}
