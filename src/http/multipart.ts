/**
 * Multipart uploads with multer: the file streams straight to the blob store's staging area
 * (hashed on the way), never buffered in memory. Oversize uploads are refused with 413 from
 * Content-Length before the body is read, or as soon as the limit is crossed.
 */
import type { Request, Response } from 'express';
import multer, { MulterError, type StorageEngine } from 'multer';
import { InvalidRequestError, PayloadTooLargeError } from '../errors.ts';
import type { BlobStore, StagedBlob } from '../store/blob-store.ts';

interface StagedUpload extends Express.Multer.File {
  staged: StagedBlob;
}

class BlobStagingStorage implements StorageEngine {
  constructor(private readonly blobs: BlobStore) {}

  _handleFile(_req: Request, file: Express.Multer.File, callback: (error?: unknown, info?: Partial<StagedUpload>) => void): void {
    this.blobs.stage(file.stream).then(
      (staged) => callback(null, { staged, size: staged.bytes }),
      (error: unknown) => callback(error),
    );
  }

  _removeFile(_req: Request, file: Express.Multer.File, callback: (error: Error | null) => void): void {
    const { staged } = file as StagedUpload;
    if (!staged) return callback(null);
    this.blobs.discard(staged).then(() => callback(null), callback);
  }
}

/** `.` and `..` (alone or ending a path): no file could be saved under them, so no sanitised name would be honest either. */
function namesADirectory(filename: string): boolean {
  return /(^|[/\\])\.{1,2}$/.test(filename);
}

/** Room for the multipart boundaries and the other form fields. */
const MULTIPART_OVERHEAD = 1024 * 1024;

export interface SingleUpload {
  staged: StagedBlob;
  originalName: string;
  fields: Record<string, unknown>;
}

export function createSingleFileUpload(blobs: BlobStore, maxBytes: number) {
  const upload = multer({
    storage: new BlobStagingStorage(blobs),
    // Browsers and the openai SDK send UTF-8 filenames without declaring a charset.
    defParamCharset: 'utf8',
    // The name as sent: busboy would turn `.` and `..` into an empty name, which multer then drops
    // as "no file". sanitizeFilename() keeps the last path segment itself.
    preservePath: true,
    limits: { fileSize: maxBytes, files: 1, fields: 20, fieldSize: 64 * 1024, parts: 25, headerPairs: 100 },
  }).single('file');

  return async function receive(req: Request, res: Response): Promise<SingleUpload> {
    const declared = Number(req.get('content-length'));
    if (Number.isFinite(declared) && declared > maxBytes + MULTIPART_OVERHEAD) {
      // Do not read a body we will refuse: close the connection after answering.
      res.setHeader('connection', 'close');
      throw new PayloadTooLargeError(`File is larger than the maximum upload size of ${maxBytes} bytes.`, { param: 'file' });
    }
    if (!req.is('multipart/form-data')) {
      throw new InvalidRequestError('Uploads must be sent as multipart/form-data with a `file` field.', { param: 'file' });
    }
    try {
      await new Promise<void>((resolve, reject) => upload(req, res, (error?: unknown) => (error ? reject(error) : resolve())));
    } catch (error) {
      if (error instanceof MulterError) {
        if (error.code === 'LIMIT_FILE_SIZE') {
          res.setHeader('connection', 'close');
          throw new PayloadTooLargeError(`File is larger than the maximum upload size of ${maxBytes} bytes.`, { param: 'file' });
        }
        throw new InvalidRequestError(`Invalid multipart upload: ${error.message}`, { param: error.field ?? 'file' });
      }
      throw new InvalidRequestError(`Invalid multipart upload: ${(error as Error).message}`, { param: 'file' });
    }
    const file = req.file as StagedUpload | undefined;
    if (!file) throw new InvalidRequestError("Missing required parameter: 'file' (a form part named `file` with a filename).", { param: 'file' });
    if (namesADirectory(file.originalname)) {
      await blobs.discard(file.staged);
      throw new InvalidRequestError(
        `Invalid 'file': its filename '${file.originalname.slice(-64)}' names a directory, not a file; send a filename such as 'notes.txt'.`,
        { param: 'file' },
      );
    }
    return { staged: file.staged, originalName: file.originalname, fields: { ...req.body } };
  };
}
