/**
 * GET /openapi.json — an OpenAPI 3.1 document generated from the zod schemas the routers validate
 * requests with, so what the document promises and what the server accepts cannot drift apart.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, type ResponseConfig, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { Router } from 'express';
import { z } from 'zod';
import { chatCompletionRequest } from './chat.ts';
import { completionRequest } from './completions.ts';
import { embeddingRequest } from './embeddings.ts';
import { listQuery as fileListQuery, uploadFields } from './files.ts';
import {
  attachRequest,
  batchRequest,
  createRequest,
  fileListQuery as kbFileListQuery,
  listQuery as kbListQuery,
  searchRequest,
  fileUpdateRequest,
  updateRequest,
} from './knowledge-bases.ts';
import * as objects from './openapi-responses.ts';
import { usageQuery } from './usage.ts';

// The routers' request schemas, named as components: `.meta` returns a clone with the same shape and
// checks. Module scope, so once per process: zod's global registry refuses a second schema per id.
const requests = {
  chat: chatCompletionRequest.meta({ id: 'CreateChatCompletionRequest' }),
  completion: completionRequest.meta({ id: 'CreateCompletionRequest' }),
  embedding: embeddingRequest.meta({ id: 'CreateEmbeddingRequest' }),
  upload: uploadFields
    .extend({ file: z.string().meta({ format: 'binary', contentMediaType: 'application/octet-stream', description: 'The file to upload.' }) })
    .meta({ id: 'CreateFileRequest' }),
  createKnowledgeBase: createRequest.meta({ id: 'CreateKnowledgeBaseRequest' }),
  updateKnowledgeBase: updateRequest.meta({ id: 'UpdateKnowledgeBaseRequest' }),
  attachFile: attachRequest.meta({ id: 'CreateKnowledgeBaseFileRequest' }),
  updateFile: fileUpdateRequest.meta({ id: 'UpdateKnowledgeBaseFileRequest' }),
  createBatch: batchRequest.meta({ id: 'CreateKnowledgeBaseFileBatchRequest' }),
  searchKnowledgeBase: searchRequest(100).meta({ id: 'KnowledgeBaseSearchRequest' }),
  searchVectorStore: searchRequest(50).meta({ id: 'VectorStoreSearchRequest' }),
};

const path = <Names extends string>(...names: Names[]) =>
  z.object(Object.fromEntries(names.map((name) => [name, z.string().min(1)])) as Record<Names, z.ZodString>);

const json = (schema: z.ZodType, description: string): ResponseConfig => ({ description, content: { 'application/json': { schema } } });
const jsonBody = (schema: z.ZodType) => ({ required: true, content: { 'application/json': { schema } } });

// Every failure is OpenAI's error envelope: one schema, and response components that reference it.
const errorContent = { 'application/json': { schema: { $ref: '#/components/schemas/ErrorResponse' } } };
const error = (description: string) => ({ description, content: errorContent });
const ERROR_RESPONSES = {
  BadRequest: 'Invalid request; `error.param` names the parameter.',
  Unauthorized: 'Missing or invalid API key.',
  NotFound: 'No such resource in the caller’s project, or no such model.',
  RateLimited:
    'Rate limit reached (`code: rate_limit_exceeded`); `retry-after` (seconds) and `retry-after-ms` say when to retry. ' +
    'Every /v1 response of a rate-limited key carries `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.',
  Error: 'Any other error (upstream failure, unavailable dependency, server error).',
};
const ref = (name: keyof typeof ERROR_RESPONSES) => ({ $ref: `#/components/responses/${name}` });
const ERRORS = { 400: ref('BadRequest'), 401: ref('Unauthorized'), 404: ref('NotFound'), 429: ref('RateLimited'), default: ref('Error') };

type Operation = Omit<RouteConfig, 'responses'> & { responses: Record<number, ResponseConfig> };

/** Routes under /v1: bearer authentication, and OpenAI's error envelope for every failure. */
function v1(registry: OpenAPIRegistry, operation: Operation): void {
  registry.registerPath({ ...operation, path: `/v1${operation.path}`, security: [{ bearerAuth: [] }], responses: { ...ERRORS, ...operation.responses } });
}

function registerModelRoutes(registry: OpenAPIRegistry): void {
  const proxied = (schema: z.ZodType, description: string): ResponseConfig => ({
    description,
    headers: z.object({ 'x-cairn-model': z.string().meta({ description: 'The model route that answered, after aliases and fallbacks.' }) }),
    content: { 'application/json': { schema }, 'text/event-stream': { schema: z.string().meta({ description: 'Server-sent events when `stream: true`.' }) } },
  });
  v1(registry, {
    method: 'post',
    path: '/chat/completions',
    tags: ['Chat'],
    summary: 'Create a chat completion; with `knowledge_bases`, grounded in Cairn knowledge bases',
    request: { body: jsonBody(requests.chat) },
    responses: { 200: proxied(objects.chatCompletion, 'The completion (a stream with `stream: true`).') },
  });
  v1(registry, {
    method: 'post',
    path: '/completions',
    tags: ['Completions'],
    summary: 'Create a text completion (legacy)',
    request: { body: jsonBody(requests.completion) },
    responses: { 200: proxied(objects.completion, 'The completion (a stream with `stream: true`).') },
  });
  v1(registry, {
    method: 'post',
    path: '/embeddings',
    tags: ['Embeddings'],
    summary: 'Create embeddings',
    request: { body: jsonBody(requests.embedding) },
    responses: { 200: json(objects.embeddingList, 'One embedding per input.') },
  });
  v1(registry, { method: 'get', path: '/models', tags: ['Models'], summary: 'List models', responses: { 200: json(objects.modelList, 'Configured models and Cairn’s built-in ones.') } });
  v1(registry, {
    method: 'get',
    path: '/models/{id}',
    tags: ['Models'],
    summary: 'Retrieve a model',
    request: { params: path('id') },
    responses: { 200: json(objects.model, 'The model.') },
  });
  v1(registry, {
    method: 'get',
    path: '/usage',
    tags: ['Usage'],
    summary: 'Token usage of the caller’s project (Cairn extension)',
    request: { query: usageQuery },
    responses: { 200: json(objects.usageSummary, 'Usage per model between `start_time` and `end_time`.') },
  });
}

function registerFileRoutes(registry: OpenAPIRegistry): void {
  const tags = ['Files'];
  v1(registry, {
    method: 'post',
    path: '/files',
    tags,
    summary: 'Upload a file',
    request: { body: { required: true, content: { 'multipart/form-data': { schema: requests.upload } } } },
    responses: {
      200: json(objects.file, 'The stored file.'),
      413: error('The file is larger than `CAIRN_MAX_UPLOAD_BYTES`, or would take the project over its storage quota (`code: storage_quota_exceeded`).'),
    },
  });
  v1(registry, { method: 'get', path: '/files', tags, summary: 'List files', request: { query: fileListQuery }, responses: { 200: json(objects.fileList, 'A page of files.') } });
  const params = path('fileId');
  v1(registry, { method: 'get', path: '/files/{fileId}', tags, summary: 'Retrieve a file', request: { params }, responses: { 200: json(objects.file, 'The file.') } });
  v1(registry, { method: 'delete', path: '/files/{fileId}', tags, summary: 'Delete a file', request: { params }, responses: { 200: json(objects.fileDeleted, 'Deleted.') } });
  v1(registry, {
    method: 'get',
    path: '/files/{fileId}/content',
    tags,
    summary: 'Download a file’s content',
    request: { params },
    responses: { 200: { description: 'The bytes as uploaded.', content: { 'application/octet-stream': { schema: z.string().meta({ format: 'binary' }) } } } },
  });
}

/** /v1/knowledge_bases and /v1/vector_stores serve the same routes; only object names and search limits differ. */
function registerKnowledgeBaseRoutes(registry: OpenAPIRegistry, mount: 'knowledge_bases' | 'vector_stores'): void {
  const kb = mount === 'knowledge_bases';
  const out = kb ? objects.knowledgeBaseMountObjects : objects.vectorStoreMountObjects;
  const tags = [kb ? 'Knowledge bases' : 'Vector stores'];
  const base = `/${mount}`;
  const one = path('kbId');
  const file = path('kbId', 'fileId');
  const batch = path('kbId', 'batchId');
  const op = (operation: Operation) => v1(registry, { tags, ...operation, path: `${base}${operation.path}` });

  op({ method: 'post', path: '', summary: 'Create', request: { body: jsonBody(requests.createKnowledgeBase) }, responses: { 200: json(out.knowledgeBase, 'Created.') } });
  op({ method: 'get', path: '', summary: 'List', request: { query: kbListQuery }, responses: { 200: json(out.knowledgeBaseList, 'A page.') } });
  op({ method: 'get', path: '/{kbId}', summary: 'Retrieve', request: { params: one }, responses: { 200: json(out.knowledgeBase, 'Found.') } });
  op({
    method: 'post',
    path: '/{kbId}',
    summary: 'Update',
    request: { params: one, body: jsonBody(requests.updateKnowledgeBase) },
    responses: { 200: json(out.knowledgeBase, 'Updated.') },
  });
  op({ method: 'delete', path: '/{kbId}', summary: 'Delete', request: { params: one }, responses: { 200: json(out.knowledgeBaseDeleted, 'Deleted.') } });
  op({
    method: 'post',
    path: '/{kbId}/files',
    summary: 'Attach a file (ingested in the background)',
    request: { params: one, body: jsonBody(requests.attachFile) },
    responses: { 200: json(out.file, 'Attached; poll until `status` is not `in_progress`.') },
  });
  op({ method: 'get', path: '/{kbId}/files', summary: 'List files', request: { params: one, query: kbFileListQuery }, responses: { 200: json(out.fileList, 'A page.') } });
  op({ method: 'get', path: '/{kbId}/files/{fileId}', summary: 'Retrieve a file', request: { params: file }, responses: { 200: json(out.file, 'Found.') } });
  op({
    method: 'post',
    path: '/{kbId}/files/{fileId}',
    summary: 'Update a file’s attributes (searches filter on them at once; nothing is re-embedded)',
    request: { params: file, body: jsonBody(requests.updateFile) },
    responses: { 200: json(out.file, 'Updated.') },
  });
  op({ method: 'delete', path: '/{kbId}/files/{fileId}', summary: 'Detach a file', request: { params: file }, responses: { 200: json(out.fileDeleted, 'Detached.') } });
  op({
    method: 'get',
    path: '/{kbId}/files/{fileId}/content',
    summary: 'The file’s parsed text as indexed (empty until ingestion completes)',
    request: { params: file },
    responses: { 200: json(out.contentPage, 'One page of text parts.') },
  });
  op({
    method: 'post',
    path: '/{kbId}/file_batches',
    summary: 'Attach files in a batch',
    request: { params: one, body: jsonBody(requests.createBatch) },
    responses: { 200: json(out.batch, 'Created.') },
  });
  op({ method: 'get', path: '/{kbId}/file_batches/{batchId}', summary: 'Retrieve a batch', request: { params: batch }, responses: { 200: json(out.batch, 'Found.') } });
  op({ method: 'post', path: '/{kbId}/file_batches/{batchId}/cancel', summary: 'Cancel a batch', request: { params: batch }, responses: { 200: json(out.batch, 'Cancelled.') } });
  op({
    method: 'get',
    path: '/{kbId}/file_batches/{batchId}/files',
    summary: 'List a batch’s files',
    request: { params: batch, query: kbFileListQuery },
    responses: { 200: json(out.fileList, 'A page.') },
  });
  op({
    method: 'post',
    path: '/{kbId}/search',
    summary: kb ? 'Search (up to 100 results)' : 'Search (up to 50 results, as OpenAI)',
    request: { params: one, body: jsonBody(kb ? requests.searchKnowledgeBase : requests.searchVectorStore) },
    responses: { 200: json(out.searchPage, 'Matching chunks, best first.') },
  });
}

function registerOperationsRoutes(registry: OpenAPIRegistry): void {
  const tags = ['Operations'];
  const open = { tags, security: [] };
  const signpost = z.object({ object: z.literal('cairn'), message: z.string(), api: z.string(), openapi: z.string(), health: z.string(), docs: z.string() });
  registry.registerPath({ ...open, method: 'get', path: '/', summary: 'Where the API, this document and the docs are', responses: { 200: json(signpost, 'A signpost.') } });
  registry.registerPath({ ...open, method: 'get', path: '/healthz', summary: 'Liveness', responses: { 200: json(z.object({ status: z.literal('ok') }), 'The process is up.') } });
  const readiness = z.looseObject({ status: z.enum(['ready', 'unavailable']), checks: z.record(z.string(), z.enum(['ok', 'failing'])) });
  registry.registerPath({
    ...open,
    method: 'get',
    path: '/readyz',
    summary: 'Readiness: database, vector store, queue and model upstreams',
    responses: {
      200: json(readiness, 'Every dependency answers.'),
      503: json(readiness, 'A dependency fails; also carries an `error` envelope naming it.'),
    },
  });
  registry.registerPath({
    ...open,
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics',
    responses: { 200: { description: 'Prometheus text exposition format.', content: { 'text/plain': { schema: z.string() } } } },
  });
  registry.registerPath({
    ...open,
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    responses: { 200: { description: 'OpenAPI 3.1.', content: { 'application/json': { schema: z.looseObject({ openapi: z.string() }) } } } },
  });
}

export function buildOpenApiDocument() {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'A Cairn API key (`npx cairn keys create --project …`); it scopes every resource to its project.',
  });
  for (const [name, description] of Object.entries(ERROR_RESPONSES)) registry.registerComponent('responses', name, error(description));
  registerOperationsRoutes(registry);
  registerModelRoutes(registry);
  registerFileRoutes(registry);
  registerKnowledgeBaseRoutes(registry, 'knowledge_bases');
  registerKnowledgeBaseRoutes(registry, 'vector_stores');
  // ErrorResponse is only referenced by $ref, so add it explicitly (wrapped: the library takes a bare
  // zod 4 schema, which has a `type` field, for a registry definition).
  return new OpenApiGeneratorV31([...registry.definitions, { type: 'schema', schema: objects.errorResponse }]).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Cairn',
      version: 'v1',
      description: 'OpenAI-compatible inference API with built-in knowledge bases. Request schemas are the ones the server validates with.',
    },
    servers: [{ url: '/' }],
  });
}

/** Serves the document, built once when the app is created. */
export function openApiRouter(): Router {
  const document = JSON.stringify(buildOpenApiDocument());
  const router = Router();
  router.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(document);
  });
  return router;
}
