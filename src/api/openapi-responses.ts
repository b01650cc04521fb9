/**
 * Response shapes for the OpenAPI document. Requests are validated by zod schemas the document
 * reuses; responses are built by plain functions (fileObject, knowledgeBaseObject…), so their
 * shapes are described here, for documentation only. Ids (`.meta({ id })`) become components.
 */
import { z } from 'zod';
import { KNOWLEDGE_BASE_FLAVOR, VECTOR_STORE_FLAVOR, type Flavor } from './knowledge-base-objects.ts';

export const errorResponse = z
  .object({
    error: z.object({
      message: z.string(),
      type: z.string().meta({ description: 'e.g. `invalid_request_error`, `authentication_error`, `not_found_error`, `server_error`.' }),
      param: z.string().nullable().meta({ description: 'The request parameter at fault, as OpenAI names it (`messages[0].content`).' }),
      code: z.string().nullable(),
    }),
  })
  .meta({ id: 'ErrorResponse', description: "OpenAI's error envelope; every error Cairn returns has this shape." });

const unixSeconds = z.number().int().meta({ description: 'Unix time in seconds.' });

const list = <Item extends z.ZodType>(item: Item) =>
  z.object({
    object: z.literal('list'),
    data: z.array(item),
    first_id: z.string().nullable(),
    last_id: z.string().nullable(),
    has_more: z.boolean(),
  });

const deleted = (object: string, id: string) => z.object({ id: z.string(), object: z.literal(object), deleted: z.literal(true) }).meta({ id });

export const chatCompletion = z
  .looseObject({ id: z.string(), object: z.literal('chat.completion'), created: unixSeconds, model: z.string(), choices: z.array(z.looseObject({})) })
  .meta({
    id: 'ChatCompletion',
    description:
      "OpenAI's `chat.completion` as the upstream returned it. Grounded answers (`knowledge_bases`) add a top-level `citations` array " +
      'and `url_citation` annotations on the message (`url`: the file\'s `/v1/files/{id}/content`, `title`: its filename, indices spanning each `[n]`); ' +
      'with `stream: true` the response is `text/event-stream` of `chat.completion.chunk` events, `citations` on the first and the finish chunk.',
  });

export const completion = z
  .looseObject({ id: z.string(), object: z.literal('text_completion'), created: unixSeconds, model: z.string(), choices: z.array(z.looseObject({})) })
  .meta({ id: 'Completion', description: "OpenAI's `text_completion` as the upstream returned it (a `text/event-stream` with `stream: true`)." });

export const embeddingList = z
  .object({
    object: z.literal('list'),
    data: z.array(
      z.object({
        object: z.literal('embedding'),
        index: z.number().int(),
        embedding: z.union([z.array(z.number()), z.string().meta({ description: 'Little-endian float32, base64 (`encoding_format: "base64"`).' })]),
      }),
    ),
    model: z.string(),
    usage: z.object({ prompt_tokens: z.number().int(), total_tokens: z.number().int() }),
  })
  .meta({ id: 'EmbeddingList' });

export const model = z
  .object({ id: z.string(), object: z.literal('model'), created: unixSeconds, owned_by: z.string() })
  .meta({ id: 'Model' });
export const modelList = z.object({ object: z.literal('list'), data: z.array(model) }).meta({ id: 'ModelList' });

export const usageSummary = z
  .object({
    object: z.literal('list'),
    data: z.array(
      z.object({
        object: z.literal('usage.model_summary'),
        model: z.string(),
        requests: z.number().int(),
        prompt_tokens: z.number().int(),
        completion_tokens: z.number().int(),
        total_tokens: z.number().int(),
      }),
    ),
  })
  .meta({ id: 'UsageSummary', description: "Cairn extension: token usage of the caller's project, per model." });

export const file = z
  .object({
    id: z.string(),
    object: z.literal('file'),
    bytes: z.number().int(),
    created_at: unixSeconds,
    filename: z.string(),
    purpose: z.string(),
    status: z.literal('processed'),
    status_details: z.null(),
    expires_at: unixSeconds.nullable(),
  })
  .meta({ id: 'File' });
export const fileList = list(file).meta({ id: 'FileList' });
export const fileDeleted = deleted('file', 'FileDeleted');

const fileCounts = z.object({
  in_progress: z.number().int(),
  completed: z.number().int(),
  failed: z.number().int(),
  cancelled: z.number().int(),
  total: z.number().int(),
});
const chunkingStrategy = z.union([
  z.object({ type: z.literal('auto') }),
  z.object({ type: z.literal('static'), static: z.object({ max_chunk_size_tokens: z.number().int(), chunk_overlap_tokens: z.number().int() }) }),
]);
const attributes = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

/** The objects of one mount (/v1/knowledge_bases or /v1/vector_stores): same fields, different names. */
function mountObjects(flavor: Flavor, prefix: 'KnowledgeBase' | 'VectorStore') {
  const knowledgeBase = z
    .object({
      id: z.string(),
      object: z.literal(flavor.kb),
      created_at: unixSeconds,
      name: z.string(),
      description: z.string().nullable(),
      usage_bytes: z.number().int(),
      file_counts: fileCounts,
      status: z.enum(['in_progress', 'completed', 'expired']),
      expires_after: z.object({ anchor: z.literal('last_active_at'), days: z.number().int() }).nullable(),
      expires_at: unixSeconds.nullable(),
      last_active_at: unixSeconds,
      metadata: z.record(z.string(), z.string()),
      embedding_model: z.string().meta({ description: 'Cairn extension: `none` for lexical-only.' }),
      chunking_strategy: chunkingStrategy.meta({ description: 'Cairn extension: the default for files attached without one.' }),
      chunk_count: z.number().int().meta({ description: 'Cairn extension: chunks indexed across completed files.' }),
      warning: z
        .string()
        .optional()
        .meta({ description: 'Cairn extension, create response only: why the knowledge base is lexical-only although no `embedding_model: "none"` was asked for (the default embedding model cannot load).' }),
    })
    .meta({ id: prefix });
  const kbFile = z
    .object({
      id: z.string(),
      object: z.literal(flavor.file),
      [flavor.parent]: z.string(),
      status: z.enum(['in_progress', 'completed', 'failed', 'cancelled']),
      last_error: z.object({ code: z.string(), message: z.string() }).nullable(),
      usage_bytes: z.number().int(),
      chunk_count: z.number().int().meta({ description: 'Cairn extension.' }),
      progress: z.number().meta({ description: 'Cairn extension: ingestion progress, 0 to 1.' }),
      created_at: unixSeconds,
      attributes,
      chunking_strategy: chunkingStrategy,
    })
    .meta({ id: `${prefix}File` });
  const batch = z
    .object({
      id: z.string(),
      object: z.literal(flavor.batch),
      [flavor.parent]: z.string(),
      created_at: unixSeconds,
      status: z.enum(['in_progress', 'completed', 'failed', 'cancelled']),
      file_counts: fileCounts,
    })
    .meta({ id: `${prefix}FileBatch` });
  const searchPage = z
    .object({
      object: z.literal(flavor.searchPage),
      search_query: z.array(z.string()),
      data: z.array(
        z.object({
          file_id: z.string(),
          filename: z.string(),
          score: z.number(),
          attributes,
          content: z.array(z.object({ type: z.literal('text'), text: z.string() })),
        }),
      ),
      has_more: z.literal(false),
      next_page: z.null(),
    })
    .meta({ id: `${prefix}SearchResultsPage` });
  const contentPage = z
    .object({
      object: z.literal(flavor.contentPage),
      data: z.array(z.object({ type: z.literal('text'), text: z.string() })),
      has_more: z.literal(false),
      next_page: z.null(),
    })
    .meta({ id: `${prefix}FileContentPage` });
  return {
    knowledgeBase,
    knowledgeBaseList: list(knowledgeBase).meta({ id: `${prefix}List` }),
    knowledgeBaseDeleted: deleted(`${flavor.kb}.deleted`, `${prefix}Deleted`),
    file: kbFile,
    fileList: list(kbFile).meta({ id: `${prefix}FileList` }),
    fileDeleted: deleted(`${flavor.file}.deleted`, `${prefix}FileDeleted`),
    batch,
    searchPage,
    contentPage,
  };
}

export type MountObjects = ReturnType<typeof mountObjects>;
export const knowledgeBaseMountObjects = mountObjects(KNOWLEDGE_BASE_FLAVOR, 'KnowledgeBase');
export const vectorStoreMountObjects = mountObjects(VECTOR_STORE_FLAVOR, 'VectorStore');
