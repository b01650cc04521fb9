/**
 * Reads a ZIP's central directory and inflates single entries under a hard byte cap, without a ZIP library.
 * Libraries (JSZip inside mammoth) inflate whatever an entry holds; DOCX files are untrusted, so sizes are
 * checked here first and nothing is ever inflated past what the directory declares.
 */
import { promisify } from 'node:util';
import { inflateRaw } from 'node:zlib';

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  /** As declared by the central directory: untrusted until `inflateZipEntry` has checked it. */
  uncompressedSize: number;
  localHeaderOffset: number;
}

const END_OF_DIRECTORY = 0x06054b50;
const DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
/** Far more parts than any real DOCX has; bounds the work a hostile directory can cause. */
export const MAX_ZIP_ENTRIES = 10_000;

const inflateRawAsync = promisify(inflateRaw);

export class ZipFormatError extends Error {}

/** True for bytes that start like a ZIP (a local file header, or the end record of an empty archive). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 3 || bytes[2] === 5) && (bytes[3] === 4 || bytes[3] === 6);
}

function findEndOfDirectory(bytes: Buffer): number {
  // The end record is 22 bytes plus a comment of at most 65,535 bytes, so it sits in the file's tail.
  const lowest = Math.max(0, bytes.length - 22 - 0xffff);
  for (let at = bytes.length - 22; at >= lowest; at -= 1) {
    if (bytes.readUInt32LE(at) === END_OF_DIRECTORY) return at;
  }
  throw new ZipFormatError('the ZIP end-of-directory record is missing (truncated file?)');
}

/** Lists the entries. Throws `ZipFormatError` on anything inconsistent: every offset is bounds-checked. */
export function readZipDirectory(bytes: Buffer): ZipEntry[] {
  const end = findEndOfDirectory(bytes);
  const count = bytes.readUInt16LE(end + 10);
  const directorySize = bytes.readUInt32LE(end + 12);
  const directoryOffset = bytes.readUInt32LE(end + 16);
  if (count === 0xffff || directoryOffset === 0xffffffff) throw new ZipFormatError('ZIP64 archives are not supported');
  if (count > MAX_ZIP_ENTRIES) throw new ZipFormatError(`the ZIP has ${count} entries (at most ${MAX_ZIP_ENTRIES})`);
  if (directoryOffset + directorySize > end) throw new ZipFormatError('the ZIP central directory lies outside the file');

  const entries: ZipEntry[] = [];
  let at = directoryOffset;
  for (let index = 0; index < count; index += 1) {
    if (at + 46 > end || bytes.readUInt32LE(at) !== DIRECTORY_ENTRY) {
      throw new ZipFormatError('the ZIP central directory is corrupt');
    }
    const nameLength = bytes.readUInt16LE(at + 28);
    const next = at + 46 + nameLength + bytes.readUInt16LE(at + 30) + bytes.readUInt16LE(at + 32);
    if (next > end) throw new ZipFormatError('the ZIP central directory is corrupt');
    entries.push({
      name: bytes.toString('utf8', at + 46, at + 46 + nameLength),
      method: bytes.readUInt16LE(at + 10),
      compressedSize: bytes.readUInt32LE(at + 20),
      uncompressedSize: bytes.readUInt32LE(at + 24),
      localHeaderOffset: bytes.readUInt32LE(at + 42),
    });
    at = next;
  }
  return entries;
}

/**
 * The entry's bytes. The guarantee: at most `entry.uncompressedSize` bytes are ever produced (zlib's
 * `maxOutputLength` stops inflation there), and an entry whose real size differs from the declared one is
 * refused, so callers can bound memory by checking declared sizes before calling this.
 */
export async function inflateZipEntry(bytes: Buffer, entry: ZipEntry): Promise<Buffer> {
  const header = entry.localHeaderOffset;
  if (header + 30 > bytes.length || bytes.readUInt32LE(header) !== LOCAL_HEADER) {
    throw new ZipFormatError(`the ZIP entry ${entry.name} has no local header`);
  }
  const start = header + 30 + bytes.readUInt16LE(header + 26) + bytes.readUInt16LE(header + 28);
  if (start + entry.compressedSize > bytes.length) throw new ZipFormatError(`the ZIP entry ${entry.name} is truncated`);
  const data = bytes.subarray(start, start + entry.compressedSize);

  let output: Buffer;
  if (entry.method === 0) {
    output = data;
  } else if (entry.method === 8) {
    try {
      // One byte of slack: a lying entry then fails the length check below instead of being cut silently.
      output = await inflateRawAsync(data, { maxOutputLength: entry.uncompressedSize + 1 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw sizeMismatch(entry, 'more');
      throw new ZipFormatError(`the ZIP entry ${entry.name} cannot be inflated: ${(error as Error).message}`);
    }
  } else {
    throw new ZipFormatError(`the ZIP entry ${entry.name} uses unsupported compression method ${entry.method}`);
  }
  if (output.length !== entry.uncompressedSize) throw sizeMismatch(entry, String(output.length));
  return output;
}

function sizeMismatch(entry: ZipEntry, actual: string): ZipFormatError {
  return new ZipFormatError(`the ZIP entry ${entry.name} declares ${entry.uncompressedSize} bytes but holds ${actual}`);
}
