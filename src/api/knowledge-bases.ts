/**
 * /v1/knowledge_bases and /v1/vector_stores — the same routes mounted twice (see knowledge-base-objects.ts).
 * Each handler: parse → call the knowledge-base service in the caller's project → shape the object.
 */
import { Router, type Response } from 'express';
import { z } from 'zod';
import { callerOf } from '../http/context.ts';
import { methodNotAllowed } from '../http/error-handler.ts';
import { parseRequest } from '../http/validate.ts';
import type { KnowledgeBaseService } from '../knowledge/knowledge-base-service.ts';
import type { Retriever } from '../rag/retriever.ts';
import { openAIFilterSchema } from '../vectors/qdrant-filters.ts';
import { attributesSchema, chunkingStrategySchema, expiresAfterSchema, fileIdsSchema, metadataSchema } from './knowledge-base-schemas.ts';
import { fileBatchObject, knowledgeBaseFileObject, knowledgeBaseObject, type Flavor } from './knowledge-base-objects.ts';
import { listBody, pageQuery, pageRequest } from './pagination.ts';

export const createRequest = z.looseObject({
  name: z.string().max(256).optional(),
  description: z.string().max(2048).nullish(),
  metadata: metadataSchema.optional(),
  embedding_model: z.string().min(1).optional().meta({ description: 'Cairn extension: the embedding model for dense search, or `none` for lexical-only (default `CAIRN_EMBEDDING_MODEL`).' }),
  chunking_strategy: chunkingStrategySchema.optional(),
  file_ids: fileIdsSchema.optional(),
  expires_after: expiresAfterSchema.nullish(),
});

export const updateRequest = z.looseObject({
  name: z.string().max(256).optional(),
  description: z.string().max(2048).nullish(),
  metadata: metadataSchema.nullish(),
  expires_after: expiresAfterSchema.nullish(),
});

export const attachRequest = z.looseObject({
  file_id: z.string().min(1),
  attributes: attributesSchema.nullish(),
  chunking_strategy: chunkingStrategySchema.optional(),
});

/** OpenAI's `vectorStores.files.update`: the attributes replace the file's (null clears them). */
export const fileUpdateRequest = z.looseObject({ attributes: attributesSchema.nullable() });

/** OpenAI's batch limit. */
const MAX_BATCH_FILES = 2_000;

/** Either `file_ids` (sharing `attributes` and `chunking_strategy`) or `files`, each with its own. */
export const batchRequest = z
  .looseObject({
    file_ids: z.array(z.string().min(1)).min(1).max(MAX_BATCH_FILES).optional(),
    files: z
      .array(z.looseObject({ file_id: z.string().min(1), attributes: attributesSchema.nullish(), chunking_strategy: chunkingStrategySchema.optional() }))
      .min(1)
      .max(MAX_BATCH_FILES)
      .optional(),
    attributes: attributesSchema.nullish(),
    chunking_strategy: chunkingStrategySchema.optional(),
  })
  .refine((body) => (body.file_ids === undefined) !== (body.files === undefined), {
    message: 'Pass exactly one of `file_ids` or `files`.',
    path: ['file_ids'],
  });

export const RANKERS = ['auto', 'default-2024-11-15'] as const;

/** OpenAI allows 50 results; Cairn's own mount allows 100, enough for Recall@100 in evaluations. */
export function searchRequest(maxResults: number) {
  return z.looseObject({
    query: z.union([z.string().min(1).max(8192), z.array(z.string().min(1).max(8192)).min(1).max(8)]),
    max_num_results: z.number().int().min(1).max(maxResults).default(10),
    filters: openAIFilterSchema.nullish(),
    ranking_options: z
      .looseObject({
        score_threshold: z.number().min(0).max(1).optional(),
        // OpenAI's rankers; both mean Cairn's one ranking (hybrid fusion, then the configured reranker if any).
        ranker: z.enum(RANKERS).optional(),
      })
      .nullish(),
    rewrite_query: z.boolean().nullish(),
  });
}

const statusFilter = z.enum(['in_progress', 'completed', 'failed', 'cancelled']);
export const listQuery = pageQuery(20, 100);
export const fileListQuery = listQuery.extend({ filter: statusFilter.optional() });

/**
 * Said in the create response (a field the SDKs pass through) when the knowledge base became
 * lexical-only because the default embedding model cannot load: its `embedding_model` is "none".
 */
function fallbackWarning(fallback: { model: string; reason: string }): string {
  return (
    `The default embedding model '${fallback.model}' is unavailable, so this knowledge base is lexical-only (BM25, embedding_model "none"); ` +
    `once the model loads, create a new one for hybrid search. ${fallback.reason}`
  );
}

/** Clients poll in-progress objects; tell them how often (the openai SDK reads this header). */
function pollHint(res: Response, inProgress: boolean): void {
  if (inProgress) res.setHeader('openai-poll-after-ms', '200');
}

export function knowledgeBasesRouter(service: KnowledgeBaseService, retriever: Retriever, flavor: Flavor): Router {
  const router = Router();
  const project = (res: Response): string => callerOf(res).projectId;
  const searchSchema = searchRequest(flavor.kb === 'vector_store' ? 50 : 100);

  router
    .route('/')
    .post(async (req, res) => {
      const body = parseRequest(createRequest, req.body);
      const { kb, embeddingFallback } = await service.create(project(res), {
        ...body,
        description: body.description ?? null,
        expiresAfterDays: body.expires_after?.days,
      });
      res.json({ ...knowledgeBaseObject(kb, flavor), ...(embeddingFallback ? { warning: fallbackWarning(embeddingFallback) } : {}) });
    })
    .get(async (req, res) => {
      const query = parseRequest(listQuery, { ...req.query });
      const page = await service.list(project(res), pageRequest(query));
      res.json(listBody(page, (kb) => knowledgeBaseObject(kb, flavor), (kb) => kb.id));
    })
    .all(methodNotAllowed(['GET', 'POST']));

  router
    .route('/:kbId')
    .get(async (req, res) => {
      const kb = await service.get(project(res), req.params.kbId!);
      pollHint(res, kb.fileCounts.in_progress > 0);
      res.json(knowledgeBaseObject(kb, flavor));
    })
    .post(async (req, res) => {
      const body = parseRequest(updateRequest, req.body);
      const kb = await service.update(project(res), req.params.kbId!, {
        name: body.name,
        description: body.description,
        metadata: body.metadata ?? undefined,
        // Absent: unchanged; null: never expires.
        expiresAfterDays: body.expires_after === undefined ? undefined : (body.expires_after?.days ?? null),
      });
      res.json(knowledgeBaseObject(kb, flavor));
    })
    .delete(async (req, res) => {
      const kb = await service.delete(project(res), req.params.kbId!);
      res.json({ id: kb.id, object: `${flavor.kb}.deleted`, deleted: true });
    })
    .all(methodNotAllowed(['GET', 'POST', 'DELETE']));

  router
    .route('/:kbId/files')
    .post(async (req, res) => {
      const body = parseRequest(attachRequest, req.body);
      const file = await service.attach(project(res), req.params.kbId!, { ...body, attributes: body.attributes ?? undefined });
      res.json(knowledgeBaseFileObject(file, flavor));
    })
    .get(async (req, res) => {
      const query = parseRequest(fileListQuery, { ...req.query });
      const page = await service.listFiles(project(res), req.params.kbId!, pageRequest(query), { status: query.filter });
      res.json(listBody(page, (file) => knowledgeBaseFileObject(file, flavor), (file) => file.fileId));
    })
    .all(methodNotAllowed(['GET', 'POST']));

  router
    .route('/:kbId/files/:fileId')
    .get(async (req, res) => {
      const file = await service.getFile(project(res), req.params.kbId!, req.params.fileId!);
      pollHint(res, file.status === 'in_progress');
      res.json(knowledgeBaseFileObject(file, flavor));
    })
    .post(async (req, res) => {
      const body = parseRequest(fileUpdateRequest, req.body);
      const file = await service.updateFileAttributes(project(res), req.params.kbId!, req.params.fileId!, body.attributes ?? {});
      res.json(knowledgeBaseFileObject(file, flavor));
    })
    .delete(async (req, res) => {
      const file = await service.detach(project(res), req.params.kbId!, req.params.fileId!);
      res.json({ id: file.fileId, object: `${flavor.file}.deleted`, deleted: true });
    })
    .all(methodNotAllowed(['GET', 'POST', 'DELETE']));

  router
    .route('/:kbId/files/:fileId/content')
    .get(async (req, res) => {
      const parts = await service.fileText(project(res), req.params.kbId!, req.params.fileId!);
      // OpenAI's shape: one page (the SDK's `Page`, no cursor) of text parts.
      res.json({ object: flavor.contentPage, data: parts.map((text) => ({ type: 'text', text })), has_more: false, next_page: null });
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/:kbId/file_batches')
    .post(async (req, res) => {
      const body = parseRequest(batchRequest, req.body);
      // As OpenAI: with `files`, the batch-wide attributes and chunking strategy do not apply.
      const files = body.files
        ? body.files.map((file) => ({ fileId: file.file_id, attributes: file.attributes ?? undefined, chunkingStrategy: file.chunking_strategy }))
        : body.file_ids!.map((fileId) => ({ fileId, attributes: body.attributes ?? undefined, chunkingStrategy: body.chunking_strategy }));
      const { batch } = await service.createBatch(project(res), req.params.kbId!, files, body.files ? 'files' : 'file_ids');
      res.json(fileBatchObject(batch, flavor));
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/:kbId/file_batches/:batchId')
    .get(async (req, res) => {
      const batch = await service.getBatch(project(res), req.params.kbId!, req.params.batchId!);
      pollHint(res, batch.fileCounts.in_progress > 0);
      res.json(fileBatchObject(batch, flavor));
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/:kbId/file_batches/:batchId/cancel')
    .post(async (req, res) => {
      res.json(fileBatchObject(await service.cancelBatch(project(res), req.params.kbId!, req.params.batchId!), flavor));
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/:kbId/file_batches/:batchId/files')
    .get(async (req, res) => {
      const query = parseRequest(fileListQuery, { ...req.query });
      await service.getBatch(project(res), req.params.kbId!, req.params.batchId!);
      const page = await service.listFiles(project(res), req.params.kbId!, pageRequest(query), {
        status: query.filter,
        batchId: req.params.batchId!,
      });
      res.json(listBody(page, (file) => knowledgeBaseFileObject(file, flavor), (file) => file.fileId));
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/:kbId/search')
    .post(async (req, res) => {
      const body = parseRequest(searchSchema, req.body);
      const queries = typeof body.query === 'string' ? [body.query] : body.query;
      const hits = await retriever.search(project(res), [{ id: req.params.kbId!, filters: body.filters ?? undefined }], {
        query: queries.join('\n'),
        maxResults: body.max_num_results,
        scoreThreshold: body.ranking_options?.score_threshold,
      });
      res.json({
        object: flavor.searchPage,
        search_query: queries,
        data: hits.map((hit) => ({
          file_id: hit.fileId,
          filename: hit.filename,
          score: hit.score,
          attributes: hit.attributes,
          content: [{ type: 'text', text: hit.text }],
        })),
        has_more: false,
        next_page: null,
      });
    })
    .all(methodNotAllowed(['POST']));

  return router;
}
