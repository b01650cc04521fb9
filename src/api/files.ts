/** /v1/files — OpenAI's Files API: upload (multipart), list, retrieve, download, delete. */
import { pipeline } from 'node:stream/promises';
import { Router } from 'express';
import { z } from 'zod';
import type { FileService } from '../knowledge/file-service.ts';
import { callerOf } from '../http/context.ts';
import { methodNotAllowed } from '../http/error-handler.ts';
import { createSingleFileUpload } from '../http/multipart.ts';
import { parseRequest } from '../http/validate.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { StoredFile } from '../store/files.ts';
import { listBody, pageQuery, pageRequest } from './pagination.ts';

const PURPOSES = ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals', 'knowledge_base'] as const;

/**
 * Multipart fields. The SDKs send `expires_after: {anchor, seconds}` as `expires_after[anchor]` and
 * `expires_after[seconds]`, which the multipart parser nests. OpenAI's bounds: one hour to 30 days.
 */
export const uploadFields = z.object({
  purpose: z.enum(PURPOSES),
  expires_after: z.object({ anchor: z.literal('created_at'), seconds: z.coerce.number().int().min(3_600).max(2_592_000) }).optional(),
});
export const listQuery = pageQuery(100, 10_000).extend({ purpose: z.string().min(1).optional() });

export function fileObject(file: StoredFile) {
  return {
    id: file.id,
    object: 'file' as const,
    bytes: file.bytes,
    created_at: Math.floor(file.createdAt.getTime() / 1000),
    filename: file.filename,
    purpose: file.purpose,
    status: 'processed' as const,
    status_details: null,
    expires_at: file.expiresAt && Math.floor(file.expiresAt.getTime() / 1000),
  };
}

export function filesRouter(files: FileService, blobs: BlobStore, maxUploadBytes: number): Router {
  const router = Router();
  const receive = createSingleFileUpload(blobs, maxUploadBytes);

  router
    .route('/files')
    .post(async (req, res) => {
      const { projectId } = callerOf(res);
      try {
        await files.checkStorageRoom(projectId);
      } catch (error) {
        // Refused before reading the body: close the connection after answering rather than drain it.
        res.setHeader('connection', 'close');
        throw error;
      }
      const upload = await receive(req, res);
      try {
        const fields = parseRequest(uploadFields, upload.fields);
        res.json(fileObject(await files.create(projectId, upload.staged, upload.originalName, fields.purpose, fields.expires_after?.seconds)));
      } catch (error) {
        await blobs.discard(upload.staged);
        throw error;
      }
    })
    .get(async (req, res) => {
      const query = parseRequest(listQuery, { ...req.query });
      const page = await files.list(callerOf(res).projectId, pageRequest(query), query.purpose);
      res.json(listBody(page, fileObject, (file) => file.id));
    })
    .all(methodNotAllowed(['GET', 'POST']));

  router
    .route('/files/:fileId')
    .get(async (req, res) => {
      res.json(fileObject(await files.get(callerOf(res).projectId, req.params.fileId!)));
    })
    .delete(async (req, res) => {
      const deleted = await files.delete(callerOf(res).projectId, req.params.fileId!);
      res.json({ id: deleted.id, object: 'file', deleted: true });
    })
    .all(methodNotAllowed(['GET', 'DELETE']));

  router
    .route('/files/:fileId/content')
    .get(async (req, res) => {
      const { file, stream } = await files.content(callerOf(res).projectId, req.params.fileId!);
      res.setHeader('content-type', 'application/octet-stream');
      res.setHeader('content-length', String(file.bytes));
      res.attachment(file.filename);
      // pipeline closes the file when the client leaves mid-download; pipe would leak the descriptor.
      await pipeline(stream, res).catch(() => undefined);
    })
    .all(methodNotAllowed(['GET']));

  return router;
}
