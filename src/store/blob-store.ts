/**
 * File bytes, one blob per file: `<dir>/files/ab/<uuid>`. Uploads stream to `staging/` while
 * being hashed and are committed under a new key once complete, so a half-received upload never
 * becomes a blob. Each file owning its bytes means deleting a file can never remove bytes another
 * file uses: content-addressed sharing lost an upload of the same bytes that raced a delete.
 * Files stored before that (`sha256/…` keys, `<dir>/sha256/ab/cd/<hash>`) stay readable.
 * Behind this interface so that an object store can be added later.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface StagedBlob {
  sha256: string;
  bytes: number;
  /** Where the staged bytes are until commit/discard. */
  stagingPath: string;
}

export interface BlobStore {
  stage(source: Readable): Promise<StagedBlob>;
  /** Moves staged bytes to a new blob of their own and returns its key. */
  commit(staged: StagedBlob): Promise<string>;
  discard(staged: StagedBlob): Promise<void>;
  /** Throws BlobMissingError when the key has no bytes. */
  read(key: string): Promise<Buffer>;
  /** Resolves once the blob is open (so a missing one is known before a response starts); throws BlobMissingError. */
  open(key: string): Promise<Readable>;
  delete(key: string): Promise<void>;
  /** Removes staged uploads older than `olderThanMs` (left by a process killed mid-upload); returns how many. */
  sweepStaging(olderThanMs: number): Promise<number>;
}

/** The bytes of a blob key are gone (removed by hand, a lost volume): permanent, retrying cannot help. */
export class BlobMissingError extends Error {
  constructor(readonly key: string, options?: { cause?: unknown }) {
    super(`blob ${key} is missing`, options);
  }
}

const FILE_KEY = /^files\/([0-9a-f]{2})[0-9a-f-]{34}$/;
const LEGACY_KEY = /^sha256\/([0-9a-f]{2})([0-9a-f]{2})[0-9a-f]{60}$/;

/** The key under which files stored before per-file blobs keep their bytes (migration 005 writes the same). */
export function legacyBlobKey(sha256: string): string {
  return `sha256/${sha256}`;
}

export class LocalBlobStore implements BlobStore {
  private readonly stagingDir: string;

  constructor(private readonly root: string) {
    this.stagingDir = path.join(root, 'staging');
  }

  /** Keys come from our own rows, but are checked anyway: a key is never a path of its own choosing. */
  private pathOf(key: string): string {
    const file = FILE_KEY.exec(key);
    if (file) return path.join(this.root, 'files', file[1]!, key.slice('files/'.length));
    const legacy = LEGACY_KEY.exec(key);
    if (legacy) return path.join(this.root, 'sha256', legacy[1]!, legacy[2]!, key.slice('sha256/'.length));
    throw new Error(`not a blob key: ${key}`);
  }

  async stage(source: Readable): Promise<StagedBlob> {
    await mkdir(this.stagingDir, { recursive: true });
    const stagingPath = path.join(this.stagingDir, randomUUID());
    const hash = createHash('sha256');
    let bytes = 0;
    source.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    try {
      await pipeline(source, createWriteStream(stagingPath));
    } catch (error) {
      await rm(stagingPath, { force: true });
      throw error;
    }
    return { sha256: hash.digest('hex'), bytes, stagingPath };
  }

  async commit(staged: StagedBlob): Promise<string> {
    const key = `files/${randomUUID()}`;
    const target = this.pathOf(key);
    await mkdir(path.dirname(target), { recursive: true });
    await rename(staged.stagingPath, target);
    return key;
  }

  async discard(staged: StagedBlob): Promise<void> {
    await rm(staged.stagingPath, { force: true });
  }

  async read(key: string): Promise<Buffer> {
    return readFile(this.pathOf(key)).catch((error: unknown) => {
      throw missingOr(key, error);
    });
  }

  async open(key: string): Promise<Readable> {
    const handle = await open(this.pathOf(key), 'r').catch((error: unknown) => {
      throw missingOr(key, error);
    });
    // The stream owns the handle from here and closes it when it ends or is destroyed.
    return handle.createReadStream();
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async sweepStaging(olderThanMs: number): Promise<number> {
    const names = await readdir(this.stagingDir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [];
      throw error;
    });
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    for (const name of names) {
      const file = path.join(this.stagingDir, name);
      // mtime, not ctime: a live upload writes to its file all along, so only an abandoned one stops changing.
      const modified = await stat(file).then((stats) => stats.mtimeMs, () => undefined);
      if (modified === undefined || modified > cutoff) continue;
      await rm(file, { force: true });
      removed += 1;
    }
    return removed;
  }
}

function missingOr(key: string, error: unknown): unknown {
  return (error as NodeJS.ErrnoException).code === 'ENOENT' ? new BlobMissingError(key, { cause: error }) : error;
}
