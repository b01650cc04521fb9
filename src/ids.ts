import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** Bytes at or above this would make some characters likelier than others (256 is not a multiple of 62). */
const UNBIASED_LIMIT = 248;

/**
 * Random bytes are drawn from a pooled buffer refilled 4 KiB at a time: ids are made on every
 * request (request ids), and one getrandom call per id showed up in the gateway profile.
 */
export class IdGenerator {
  private pool = Buffer.alloc(4096);
  private offset = this.pool.length;

  private nextByte(): number {
    if (this.offset === this.pool.length) {
      randomFillSync(this.pool);
      this.offset = 0;
    }
    return this.pool[this.offset++]!;
  }

  /** A random id like `proj_3fQ9…`: 22 base62 characters carry ~130 bits. */
  next(prefix: string, length = 22): string {
    let out = prefix;
    while (out.length < prefix.length + length) {
      const byte = this.nextByte();
      if (byte < UNBIASED_LIMIT) out += ALPHABET[byte % 62];
    }
    return out;
  }
}

const ids = new IdGenerator();

export function newId(prefix: string, length = 22): string {
  return ids.next(prefix, length);
}
