/** Uploaded files: bytes in the blob store, rows in the files table, removal from every knowledge base on delete. */
import type { Readable } from 'node:stream';
import { NotFoundError, PayloadTooLargeError, ServerError } from '../errors.ts';
import { BlobMissingError, type BlobStore, type StagedBlob } from '../store/blob-store.ts';
import type { FileStore, StoredFile } from '../store/files.ts';
import type { Page, PageRequest } from '../store/pagination.ts';
import { sanitizeFilename } from './filenames.ts';
import type { KnowledgeBaseService } from './knowledge-base-service.ts';

export class FileService {
  constructor(
    private readonly files: FileStore,
    private readonly blobs: BlobStore,
    private readonly knowledgeBases: KnowledgeBaseService,
    /** Server-wide storage quota per project, for projects without their own (undefined: unlimited). */
    private readonly defaultQuotaBytes?: number,
  ) {}

  /** Refuses an upload before its bytes are received when the project's files already fill its quota. */
  async checkStorageRoom(projectId: string): Promise<void> {
    const quota = await this.files.quota(projectId, this.defaultQuotaBytes);
    if (quota && quota.usedBytes >= quota.quotaBytes) throw quotaExceeded(quota, undefined);
  }

  /**
   * Records bytes already staged (streamed to disk and hashed while uploading), within the
   * project's storage quota. The bytes become the file's own blob before its row exists, so a
   * file that can be read or deleted always has its bytes.
   */
  async create(projectId: string, staged: StagedBlob, filename: string, purpose: string, expiresAfterSeconds?: number): Promise<StoredFile> {
    const blobKey = await this.blobs.commit(staged);
    try {
      const created = await this.files.create(
        { projectId, filename: sanitizeFilename(filename), purpose, bytes: staged.bytes, sha256: staged.sha256, blobKey, expiresAfterSeconds },
        this.defaultQuotaBytes,
      );
      if (!('file' in created)) throw quotaExceeded(created, staged.bytes);
      return created.file;
    } catch (error) {
      await this.blobs.delete(blobKey);
      throw error;
    }
  }

  async get(projectId: string, id: string): Promise<StoredFile> {
    const file = await this.files.get(projectId, id);
    if (!file) throw new NotFoundError(`No such File object: ${id}`, { param: 'file_id' });
    return file;
  }

  list(projectId: string, page: PageRequest, purpose?: string): Promise<Page<StoredFile>> {
    return this.files.list(projectId, page, purpose);
  }

  async content(projectId: string, id: string): Promise<{ file: StoredFile; stream: Readable }> {
    const file = await this.get(projectId, id);
    try {
      return { file, stream: await this.blobs.open(file.blobKey) };
    } catch (error) {
      if (!(error instanceof BlobMissingError)) throw error;
      // Deleted between the lookup and the read: that is a 404, not a server fault.
      await this.get(projectId, id);
      throw new ServerError(`The bytes of file ${id} are missing from the server's storage; the file cannot be downloaded or ingested. Upload it again.`, {
        code: 'file_content_missing',
        cause: error,
      });
    }
  }

  /** Detaches the file from every knowledge base (removing its chunks), then deletes it. */
  async delete(projectId: string, id: string): Promise<StoredFile> {
    await this.get(projectId, id);
    const deleted = await this.remove(projectId, id);
    if (!deleted) throw new NotFoundError(`No such File object: ${id}`, { param: 'file_id' });
    return deleted;
  }

  /** The expiry sweeper's delete: the file already answers 404, its storage goes now. */
  async reclaimExpired(file: StoredFile): Promise<void> {
    await this.remove(file.projectId, file.id);
  }

  private async remove(projectId: string, id: string): Promise<StoredFile | undefined> {
    await this.knowledgeBases.detachEverywhere(projectId, id);
    const result = await this.files.delete(projectId, id);
    if (!result) return undefined;
    // Rows first, bytes second: once the row is gone nothing can reach the bytes.
    if (!result.blobStillUsed) await this.blobs.delete(result.deleted.blobKey);
    return result.deleted;
  }
}

function quotaExceeded(quota: { quotaBytes: number; usedBytes: number }, fileBytes: number | undefined): PayloadTooLargeError {
  const file = fileBytes === undefined ? '' : ` and this file has ${fileBytes} bytes`;
  return new PayloadTooLargeError(
    `Storage quota exceeded: this project stores ${quota.usedBytes} bytes of its ${quota.quotaBytes}-byte quota${file}. ` +
      'Delete files you no longer need, or ask an operator to raise the quota (`cairn projects limits <project> --storage-bytes <n>`).',
    { code: 'storage_quota_exceeded', param: 'file' },
  );
}
