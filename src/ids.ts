import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** A random id like `proj_3fQ9…`: 22 base62 characters carry ~130 bits. */
export function newId(prefix: string, length = 22): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const byte of bytes) out += ALPHABET[byte % 62];
  return `${prefix}${out}`;
}
