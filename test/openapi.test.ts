/**
 * GET /openapi.json: served without a key, a structurally sound OpenAPI 3.1 document, and complete —
 * every route the express app serves (read from its router stack, not from a list kept by hand) is
 * in it with its method, and nothing is documented that the app does not serve.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createApp } from '../src/app.ts';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { routeKey, routesOf, type AppRoute } from './helpers/routes.ts';

type Json = Record<string, unknown>;

interface Operation {
  parameters?: Array<{ name: string; in: string; required?: boolean }>;
  requestBody?: { content: Record<string, { schema: Json }> };
  responses: Record<string, Json>;
  security?: Array<Record<string, string[]>>;
}

interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Json>; responses: Record<string, Json>; securitySchemes: Record<string, Json> };
}

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

/** express `/v1/files/:fileId` → OpenAPI `/v1/files/{fileId}`. */
const openApiPath = (expressPath: string): string => expressPath.replace(/:(\w+)/g, '{$1}');

/** Every `$ref` anywhere in the document, with where it was found. */
function refsIn(value: unknown, at: string, into: Array<{ ref: string; at: string }>): void {
  if (Array.isArray(value)) value.forEach((item, index) => refsIn(item, `${at}/${index}`, into));
  else if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (key === '$ref' && typeof child === 'string') into.push({ ref: child, at });
      else refsIn(child, `${at}/${key}`, into);
    }
  }
}

/** A local JSON pointer (`#/components/schemas/File`) resolved in the document, or undefined. */
function resolve(document: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  return ref
    .slice(2)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((node, token) => (node && typeof node === 'object' ? (node as Json)[token] : undefined), document);
}

describe('OpenAPI document', () => {
  let cairn: TestCairn;
  let response: Response;
  let doc: OpenApiDocument;
  let served: AppRoute[];

  before(async () => {
    cairn = await startCairn();
    response = await fetch(`${cairn.url}/openapi.json`);
    doc = (await response.clone().json()) as OpenApiDocument;
    // The same createApp the running server was built with, on the same services.
    served = routesOf(createApp(cairn.services));
  });
  after(() => cairn.stop());

  const operation = (method: string, path: string): Operation => {
    const found = doc.paths[path]?.[method];
    assert.ok(found, `${method.toUpperCase()} ${path} is not documented`);
    return found;
  };
  const schemaOf = (node: Json): Json => (typeof node.$ref === 'string' ? (resolve(doc, node.$ref) as Json) : node);

  it('is served without an API key as OpenAPI 3.1 JSON', () => {
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.match(doc.openapi, /^3\.1\.\d+$/);
    assert.equal(doc.info.title, 'Cairn');
    assert.equal(typeof doc.info.version, 'string');
  });

  it('documents every route the app serves, with its method', () => {
    // The walk itself must have worked, or an empty list would pass vacuously.
    const keys = served.map(routeKey);
    for (const expected of ['POST /v1/chat/completions', 'GET /v1/files/:fileId', 'POST /v1/vector_stores/:kbId/search', 'GET /healthz', 'GET /openapi.json']) {
      assert.ok(keys.includes(expected), `router walk did not find ${expected}; found: ${keys.join(', ')}`);
    }
    const missing = served.filter((route) => !doc.paths[openApiPath(route.path)]?.[route.method.toLowerCase()]).map(routeKey);
    assert.deepEqual(missing, [], 'served but not in /openapi.json');
  });

  it('documents no route the app does not serve', () => {
    const servedKeys = new Set(served.map((route) => `${route.method.toLowerCase()} ${openApiPath(route.path)}`));
    const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.keys(item)
        .filter((method) => HTTP_METHODS.has(method))
        .map((method) => `${method} ${path}`),
    );
    assert.ok(documented.length >= served.length);
    assert.deepEqual(documented.filter((key) => !servedKeys.has(key)), [], 'in /openapi.json but not served');
  });

  it('declares each path template parameter as a required path parameter', () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      const names = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]);
      for (const [method, op] of Object.entries(item)) {
        const declared = (op.parameters ?? []).filter((param) => param.in === 'path');
        assert.deepEqual(declared.map((param) => param.name).sort(), [...names].sort(), `${method} ${path}`);
        assert.ok(declared.every((param) => param.required === true), `${method} ${path}: path parameters must be required`);
      }
    }
  });

  it('resolves every $ref and gives every operation a response', () => {
    const refs: Array<{ ref: string; at: string }> = [];
    refsIn(doc, '#', refs);
    assert.ok(refs.length > 50, `only ${refs.length} $refs`);
    const dangling = refs.filter(({ ref }) => resolve(doc, ref) === undefined).map(({ ref, at }) => `${ref} (at ${at})`);
    assert.deepEqual(dangling, []);
    for (const [path, item] of Object.entries(doc.paths)) {
      assert.ok(path.startsWith('/'), path);
      for (const [method, op] of Object.entries(item)) {
        assert.ok(HTTP_METHODS.has(method), `${path}: ${method} is not an HTTP method`);
        const statuses = Object.keys(op.responses);
        assert.ok(statuses.some((status) => /^2\d\d$/.test(status)), `${method} ${path} has no success response`);
        assert.ok(statuses.every((status) => status === 'default' || /^[1-5]\d\d$/.test(status)), `${method} ${path}: ${statuses.join(', ')}`);
      }
    }
  });

  it('requires the bearer key on /v1 and nothing on the operations endpoints', () => {
    assert.deepEqual(doc.components.securitySchemes.bearerAuth, { ...doc.components.securitySchemes.bearerAuth, type: 'http', scheme: 'bearer' });
    for (const route of served) {
      const op = operation(route.method.toLowerCase(), openApiPath(route.path));
      const expected = route.path.startsWith('/v1/') ? [{ bearerAuth: [] }] : [];
      assert.deepEqual(op.security, expected, routeKey(route));
      if (route.path.startsWith('/v1/')) {
        assert.equal((op.responses[401] as Json).$ref, '#/components/responses/Unauthorized', routeKey(route));
      }
    }
    const envelope = schemaOf({ $ref: '#/components/schemas/ErrorResponse' });
    const error = (envelope.properties as Json).error as Json;
    assert.deepEqual([...(error.required as string[])].sort(), ['code', 'message', 'param', 'type']);
  });

  it('documents the rate-limit refusal on every /v1 operation', () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      if (!path.startsWith('/v1/')) continue;
      for (const [method, op] of Object.entries(item)) {
        assert.deepEqual(op.responses['429'], { $ref: '#/components/responses/RateLimited' }, `${method} ${path}`);
      }
    }
    assert.match(JSON.stringify(doc.components.responses.RateLimited), /retry-after/);
  });

  it('describes Cairn’s extension fields in the chat request schema', () => {
    const chat = schemaOf(operation('post', '/v1/chat/completions').requestBody!.content['application/json']!.schema);
    const properties = chat.properties as Record<string, Json>;
    assert.ok(properties.model && properties.messages, 'the OpenAI fields are there');
    const knowledgeBases = properties.knowledge_bases!;
    assert.equal(knowledgeBases.type, 'array');
    assert.equal(knowledgeBases.maxItems, 10);
    assert.match(String(knowledgeBases.description), /knowledge bases/);
    const byObject = ((knowledgeBases.items as Json).anyOf as Json[]).find((option) => option.type === 'object')!;
    assert.deepEqual((byObject.properties as Json).filters, { $ref: '#/components/schemas/AttributeFilter' });
    const retrieval = properties.retrieval!;
    assert.deepEqual(Object.keys(retrieval.properties as Json).sort(), ['max_num_results', 'rewrite_query', 'score_threshold']);
    assert.match(String(retrieval.description), /Cairn extension/);
  });

  it('promises the limits the server enforces (same schema)', async () => {
    const chat = schemaOf(operation('post', '/v1/chat/completions').requestBody!.content['application/json']!.schema);
    const limit = ((chat.properties as Record<string, Json>).knowledge_bases!.maxItems as number);
    const ask = (count: number) =>
      fetch(`${cairn.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cairn.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'extractive',
          messages: [{ role: 'user', content: 'hello' }],
          knowledge_bases: Array.from({ length: count }, (_, index) => `kb_missing_${index}`),
        }),
      });
    const tooMany = await ask(limit + 1);
    assert.equal(tooMany.status, 400);
    assert.equal(((await tooMany.json()) as { error: { param: string } }).error.param, 'knowledge_bases');
    // At the limit validation passes; the knowledge bases then do not exist.
    const atLimit = await ask(limit);
    assert.equal(atLimit.status, 404);
    assert.equal(((await atLimit.json()) as { error: { param: string } }).error.param, 'knowledge_bases');
  });

  it('takes uploads as multipart with a binary file and the validated purposes', () => {
    const body = operation('post', '/v1/files').requestBody!.content;
    assert.deepEqual(Object.keys(body), ['multipart/form-data']);
    const upload = schemaOf(body['multipart/form-data']!.schema);
    const properties = upload.properties as Record<string, Json>;
    assert.equal(properties.file!.format, 'binary');
    assert.ok((properties.purpose!.enum as string[]).includes('knowledge_base'));
    assert.deepEqual([...(upload.required as string[])].sort(), ['file', 'purpose']);
  });

  it('differs between the two knowledge-base mounts where the server does', () => {
    const search = (mount: string) =>
      schemaOf(operation('post', `/v1/${mount}/{kbId}/search`).requestBody!.content['application/json']!.schema).properties as Record<string, Json>;
    assert.equal(search('knowledge_bases').max_num_results!.maximum, 100);
    assert.equal(search('vector_stores').max_num_results!.maximum, 50);
    const object = (mount: string) =>
      ((schemaOf((operation('get', `/v1/${mount}/{kbId}`).responses[200] as { content: Record<string, { schema: Json }> }).content['application/json']!.schema)
        .properties as Record<string, Json>).object!.enum as string[]);
    assert.deepEqual(object('knowledge_bases'), ['knowledge_base']);
    assert.deepEqual(object('vector_stores'), ['vector_store']);
  });
});
