/**
 * The admin channel's wire format: JSON lines over the data dir's Unix socket.
 * The owner of the data dir greets each connection once it can run commands; the client then
 * sends one request and reads one response. A connection closed before the greeting ran nothing,
 * so the client may safely try again.
 */
import type { Socket } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';

/** Who holds the data dir: the embedded server, or a CLI that opened it because no server ran. */
export const ownerKind = z.enum(['server', 'cli']);
export type OwnerKind = z.infer<typeof ownerKind>;

export const greeting = z.object({ cairn: z.literal('admin'), owner: ownerKind, pid: z.number().int() });
export type Greeting = z.infer<typeof greeting>;

export const adminRequest = z.object({ command: z.string().min(1).max(100), input: z.unknown() });
export type AdminRequest = z.infer<typeof adminRequest>;

export const adminResponse = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), result: z.unknown() }),
  z.object({ ok: z.literal(false), error: z.object({ message: z.string() }) }),
]);
export type AdminResponse = z.infer<typeof adminResponse>;

/** The socket lives in its own owner-only (0700) folder inside the data dir. */
export function adminSocketPath(dataDir: string): string {
  return path.join(dataDir, 'run', 'admin.sock');
}

export function writeLine(socket: Socket, message: unknown): void {
  socket.write(`${JSON.stringify(message)}\n`);
}

/**
 * Reads JSON lines from a socket: `next()` resolves with the next parsed line, or undefined once
 * the peer closed (or reset) without sending one. A line that is not JSON closes the connection.
 */
export function lineReader(socket: Socket): { next(): Promise<unknown> } {
  // A reset peer counts as a closed one: what matters is whether a line arrived.
  socket.on('error', () => undefined);
  const reader = createInterface({ input: socket, crlfDelay: Infinity });
  // readline ends on 'end' only; a destroyed socket emits just 'close'.
  socket.on('close', () => reader.close());
  const lines = reader[Symbol.asyncIterator]();
  return {
    async next() {
      const line = await lines.next().catch(() => ({ done: true as const, value: undefined }));
      if (line.done) return undefined;
      try {
        return JSON.parse(line.value) as unknown;
      } catch {
        socket.destroy();
        return undefined;
      }
    },
  };
}
