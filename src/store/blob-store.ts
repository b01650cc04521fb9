/**
 * Content-addressed file bytes: `<dir>/sha256/ab/cd/<hash>`. Uploads stream to a temp file while
 * being hashed and are committed under their hash once complete, so a half-received upload never
 * becomes a blob. Behind this interface so that an object store can be added later.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
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
  commit(staged: StagedBlob): Promise<void>;
  discard(staged: StagedBlob): Promise<void>;
  read(sha256: string): Promise<Buffer>;
  open(sha256: string): Readable;
  delete(sha256: string): Promise<void>;
}

const HASH = /^[0-9a-f]{64}$/;

export class LocalBlobStore implements BlobStore {
  private readonly stagingDir: string;

  constructor(private readonly root: string) {
    this.stagingDir = path.join(root, 'staging');
  }

  private pathOf(sha256: string): string {
    if (!HASH.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return path.join(this.root, 'sha256', sha256.slice(0, 2), sha256.slice(2, 4), sha256);
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

  async commit(staged: StagedBlob): Promise<void> {
    const target = this.pathOf(staged.sha256);
    const exists = await stat(target).then(() => true, () => false);
    if (exists) {
      await rm(staged.stagingPath, { force: true });
      return;
    }
    await mkdir(path.dirname(target), { recursive: true });
    await rename(staged.stagingPath, target);
  }

  async discard(staged: StagedBlob): Promise<void> {
    await rm(staged.stagingPath, { force: true });
  }

  read(sha256: string): Promise<Buffer> {
    return readFile(this.pathOf(sha256));
  }

  open(sha256: string): Readable {
    return createReadStream(this.pathOf(sha256));
  }

  async delete(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }
}
