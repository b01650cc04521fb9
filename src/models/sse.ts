/** Incremental Server-Sent Events parsing: feed bytes, get the `data` payload of each complete event. */
import { StringDecoder } from 'node:string_decoder';

export class SseParser {
  private readonly decoder = new StringDecoder('utf8');
  private buffer = '';

  /** Returns the data payloads of the events completed by this chunk. */
  push(chunk: Buffer | string): string[] {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const payloads: string[] = [];
    for (;;) {
      const match = /\r?\n\r?\n/.exec(this.buffer);
      if (!match) break;
      const event = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
        .join('\n');
      if (data) payloads.push(data);
    }
    return payloads;
  }
}

export function sseData(payload: unknown): string {
  return `data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`;
}
