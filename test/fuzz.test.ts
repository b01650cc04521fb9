/**
 * Property-based fuzzing of every JSON endpoint with fast-check: for each POST route, RUNS
 * generated bodies mixing arbitrary JSON, schema-shaped bodies with wrong types and boundary
 * values, prototype-pollution keys, lone surrogates, huge numbers, deep nesting and broken JSON.
 * Properties: no 5xx (the upstream stub and Qdrant are healthy, so even 502/503/504 are bugs here),
 * every error in OpenAI's envelope, no prototype pollution, no unhandled error logged, and a
 * healthy server afterwards. Set FUZZ_SEED to replay a run; FUZZ_RUNS to change the count.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { toFile } from 'openai';
import { Pool } from 'undici';
import { createApp } from '../src/app.ts';
import { startCairn, stubModel, type TestCairn } from './helpers/harness.ts';
import { routeKey, routesOf } from './helpers/routes.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1_000);
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const CONCURRENCY = 8;

interface Ids {
  kbId: string;
  attachKbId: string;
  fileId: string;
  batchId: string;
}

/** A body sent as-is, for what JSON.stringify cannot produce (huge numbers, deep nesting, broken JSON). */
class Raw {
  constructor(readonly text: string) {}
}
type Body = unknown;

// ---- building blocks -------------------------------------------------------------------------

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code));
const weirdString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.tuple(fc.string({ maxLength: 5 }), loneSurrogate, fc.string({ maxLength: 5 })).map((parts) => parts.join('')),
  fc.constantFrom('', ' ', '\u0000', 'nul\u0000in', '\u202egnp.exe', '../../etc/passwd', '%00', "' OR 1=1 --", '{{7*7}}', 'x'.repeat(20_000)),
);
const edgeNumber = fc.oneof(
  fc.constantFrom(0, -0, -1, 1, 0.5, 2 ** 31, 2 ** 53, -(2 ** 53), 2 ** 53 + 2, 1e308, -1e308, 5e-324, Number.MAX_VALUE),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const anyJson = fc.jsonValue({ maxDepth: 4 });
/** A value of the wrong type (or a boundary value) for any field. */
const wrong = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  edgeNumber,
  weirdString,
  fc.array(anyJson, { maxLength: 3 }),
  fc.dictionary(weirdString, anyJson, { maxKeys: 3 }),
);
/** Mostly a plausible value, sometimes anything else. */
const field = <T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: wrong, weight: 1 });
/** Every key optional, so required fields go missing too. */
const shape = (fields: Record<string, fc.Arbitrary<unknown>>) => fc.record(fields, { requiredKeys: [] });
/** A request body: the `required` keys always there, the others sometimes; half the time one known field is forced wrong. */
function requestBody(fields: Record<string, fc.Arbitrary<unknown>>, required: string[] = []): fc.Arbitrary<Record<string, unknown>> {
  const record = fc.record(fields, { requiredKeys: required });
  const oneWrong = fc.tuple(record, fc.constantFrom(...Object.keys(fields)), wrong).map(([value, key, bad]) => ({ ...value, [key]: bad }));
  return fc.oneof(record, oneWrong);
}

/** In range, with the values just outside now and then. */
const smallInt = (min: number, max: number) => fc.oneof({ arbitrary: fc.integer({ min, max }), weight: 8 }, { arbitrary: fc.constantFrom(min - 1, max + 1), weight: 1 });
const ranged = (min: number, max: number) =>
  fc.oneof({ arbitrary: fc.double({ min, max, noNaN: true }), weight: 8 }, { arbitrary: fc.constantFrom(min - 0.001, max + 0.001, min - 1e9, max + 1e9), weight: 1 });
const metadata = fc.dictionary(fc.oneof(fc.string({ maxLength: 70 }), weirdString), fc.oneof(fc.string({ maxLength: 600 }), edgeNumber, fc.boolean()), { maxKeys: 18 });
const chunkingStrategy = fc.oneof(
  fc.constant({ type: 'auto' }),
  fc.record({ type: fc.constant('static'), static: shape({ max_chunk_size_tokens: field(smallInt(100, 4096)), chunk_overlap_tokens: field(smallInt(0, 2048)) }) }),
  fc.record({ type: weirdString }),
);
const attributeFilter = fc.letrec<{ filter: unknown }>((tie) => ({
  filter: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    shape({ type: field(fc.constantFrom('eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'nin')), key: field(weirdString), value: field(fc.oneof(weirdString, edgeNumber, fc.boolean(), fc.array(fc.oneof(fc.string(), edgeNumber), { maxLength: 4 }))) }),
    shape({ type: field(fc.constantFrom('and', 'or')), filters: field(fc.array(tie('filter'), { maxLength: 3 })) }),
  ),
})).filter;

// ---- raw bodies: what JSON.stringify cannot express ------------------------------------------

const HUGE = ['1e400', '-1e400', '123456789012345678901234567890', '-0', '1E308', '5e-324', '9007199254740993', '0.1e-999'];

/** `{"field": <raw>, ...}` around a valid-looking body, so the raw value reaches the schema. */
function rawBodies(base: Record<string, unknown>, fields: string[]): fc.Arbitrary<Raw> {
  const inField = (valueText: fc.Arbitrary<string>) =>
    fc.tuple(fc.constantFrom(...fields), valueText).map(([name, text]) => {
      const rest = JSON.stringify({ ...base, [name]: undefined }).slice(1);
      return new Raw(`{${JSON.stringify(name)}:${text}${rest === '}' ? '}' : `,${rest}`}`);
    });
  const depth = fc.integer({ min: 10, max: 5_000 });
  return fc.oneof(
    inField(fc.constantFrom(...HUGE)),
    inField(depth.map((n) => `${'['.repeat(n)}${']'.repeat(n)}`)),
    inField(depth.map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`)),
    inField(depth.map((n) => `${'{"type":"and","filters":['.repeat(n)}{"type":"eq","key":"k","value":1}${']}'.repeat(n)}`)),
    // Keys that name Object.prototype's properties, as own keys of the parsed body.
    fc.tuple(fc.constantFrom('__proto__', 'constructor', 'prototype'), anyJson).map(([key, value]) => {
      const poisoned = `{${JSON.stringify(key)}:{"polluted":${JSON.stringify(value ?? 1)},"prototype":{"polluted":1}},`;
      return new Raw(`${poisoned}${JSON.stringify(base).slice(1)}`);
    }),
    // Broken JSON: truncated, doubled, empty.
    fc.integer({ min: 0, max: 200 }).map((cut) => new Raw(JSON.stringify(base).slice(0, cut))),
    fc.constantFrom(new Raw(''), new Raw('null'), new Raw('[]'), new Raw('"x"'), new Raw('{}{}'), new Raw('{"a":1,}'), new Raw('\uFEFF{}')),
  );
}

// ---- the endpoints ---------------------------------------------------------------------------

interface Target {
  route: string;
  /** Bodies to send (default RUNS). */
  runs?: number;
  /** False for routes no JSON body can succeed on. */
  accepts?: boolean;
  path: (ids: Ids) => string;
  bodies: (ids: Ids) => fc.Arbitrary<Body>;
}

/** Schema-shaped bodies (weight 3), arbitrary JSON (2) and raw text (1). */
function mixed(shaped: fc.Arbitrary<unknown>, base: Record<string, unknown>): fc.Arbitrary<Body> {
  return fc.oneof(
    { arbitrary: shaped, weight: 3 },
    { arbitrary: fc.oneof(anyJson, fc.dictionary(weirdString, anyJson, { maxKeys: 6 })), weight: 2 },
    { arbitrary: rawBodies(base, Object.keys(base)), weight: 1 },
  );
}

const message = fc.record({
  role: fc.constantFrom('system', 'developer', 'user', 'assistant', 'tool', 'function'),
  content: fc.oneof(fc.string({ maxLength: 200 }), fc.constant(null), fc.array(shape({ type: field(fc.constantFrom('text', 'image_url')), text: field(fc.string()) }), { maxLength: 3 })),
  name: field(fc.string({ maxLength: 10 })),
}, { requiredKeys: ['role'] });
const sampling = {
  stream: field(fc.boolean()),
  stream_options: field(shape({ include_usage: field(fc.boolean()) })),
  max_tokens: field(smallInt(1, 64)),
  temperature: field(ranged(0, 2)),
  top_p: field(ranged(0, 1)),
  n: field(smallInt(1, 4)),
  stop: field(fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 6 }))),
  seed: field(fc.integer()),
  logprobs: field(fc.oneof(fc.boolean(), smallInt(0, 5))),
  user: field(fc.string()),
};

function chatBodies(ids: Ids): fc.Arbitrary<Body> {
  const kbRef = fc.oneof(
    { arbitrary: fc.constant(ids.kbId), weight: 4 },
    { arbitrary: weirdString, weight: 1 },
    { arbitrary: shape({ id: field(fc.constant(ids.kbId)), max_num_results: field(smallInt(1, 50)), filters: field(attributeFilter), score_threshold: field(ranged(0, 1)) }), weight: 2 },
  );
  const shaped = requestBody({
    model: fc.constantFrom('stub', 'stub', 'extractive', 'no-such-model'),
    messages: fc.array(message, { minLength: 1, maxLength: 3 }),
    ...sampling,
    max_completion_tokens: field(smallInt(1, 64)),
    top_logprobs: field(smallInt(0, 20)),
    tools: field(fc.array(shape({ type: field(fc.string()) }), { maxLength: 2 })),
    response_format: field(shape({ type: field(fc.constantFrom('text', 'json_object')) })),
    knowledge_bases: field(fc.array(kbRef, { maxLength: 3 })),
    retrieval: field(shape({ max_num_results: field(smallInt(1, 50)), score_threshold: field(ranged(0, 1)), rewrite_query: field(fc.boolean()) })),
  }, ['model', 'messages']);
  return mixed(shaped, { model: 'stub', messages: [{ role: 'user', content: 'hi' }], temperature: 1, max_tokens: 8, stop: 'x' });
}

function completionBodies(): fc.Arbitrary<Body> {
  const shaped = requestBody({
    model: fc.constantFrom('stub', 'stub', 'no-such-model'),
    prompt: fc.oneof(fc.string({ maxLength: 200 }), fc.array(fc.string(), { maxLength: 3 }), fc.array(fc.integer(), { maxLength: 5 }), fc.array(fc.array(fc.integer(), { maxLength: 3 }), { maxLength: 2 })),
    ...sampling,
    echo: field(fc.boolean()),
    best_of: field(smallInt(1, 20)),
    suffix: field(fc.string()),
  }, ['model', 'prompt']);
  return mixed(shaped, { model: 'stub', prompt: 'hi', max_tokens: 8, best_of: 1 });
}

function embeddingBodies(): fc.Arbitrary<Body> {
  const shaped = requestBody({
    model: fc.constantFrom('remote', 'remote', 'no-such-model'),
    input: fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.array(fc.string({ maxLength: 50 }), { maxLength: 4 }),
      // Token arrays, in and out of the tokenizers' vocabularies.
      fc.array(fc.oneof(fc.integer({ min: 0, max: 200_000 }), edgeNumber), { maxLength: 8 }),
      fc.array(fc.array(fc.integer({ min: -1, max: 300_000 }), { maxLength: 5 }), { maxLength: 3 }),
    ),
    encoding_format: field(fc.constantFrom('float', 'base64', 'int8')),
    dimensions: field(smallInt(1, 64)),
    user: field(fc.string()),
  }, ['model', 'input']);
  return mixed(shaped, { model: 'remote', input: 'hi', dimensions: 8 });
}

const expiresAfter = shape({ anchor: field(fc.constantFrom('last_active_at', 'created_at')), days: field(edgeNumber) });

const kbCreateBodies = (ids: Ids) =>
  mixed(
    requestBody({
      name: field(fc.string({ maxLength: 300 })),
      description: field(fc.oneof(fc.string({ maxLength: 2100 }), fc.constant(null))),
      metadata: field(metadata),
      embedding_model: field(fc.constantFrom('none', 'remote', 'no-such-model')),
      chunking_strategy: field(chunkingStrategy),
      // The real file rarely: a valid body with it starts an ingestion.
      file_ids: field(fc.array(fc.oneof({ arbitrary: fc.constant(ids.fileId), weight: 1 }, { arbitrary: weirdString, weight: 8 }), { maxLength: 3 })),
      expires_after: field(fc.oneof(expiresAfter, fc.constant(null))),
    }),
    { name: 'x', embedding_model: 'none', metadata: { a: 'b' } },
  );

const kbUpdateBodies = () =>
  mixed(
    requestBody({
      name: field(fc.string({ maxLength: 300 })),
      description: field(fc.oneof(fc.string({ maxLength: 2100 }), fc.constant(null))),
      metadata: field(fc.oneof(metadata, fc.constant(null))),
      expires_after: field(fc.oneof(expiresAfter, fc.constant(null))),
    }),
    { name: 'x', metadata: { a: 'b' } },
  );

const fileRef = (ids: Ids) => fc.oneof({ arbitrary: fc.constant(ids.fileId), weight: 1 }, { arbitrary: weirdString, weight: 4 });
const attributes = fc.dictionary(fc.oneof(fc.string({ maxLength: 70 }), weirdString), fc.oneof(fc.string({ maxLength: 600 }), edgeNumber, fc.boolean(), anyJson), { maxKeys: 18 });

const attachBodies = (ids: Ids) =>
  mixed(
    requestBody({ file_id: fileRef(ids), attributes: field(fc.oneof(attributes, fc.constant(null))), chunking_strategy: field(chunkingStrategy) }, ['file_id']),
    { file_id: ids.fileId, attributes: { a: 1 } },
  );

const fileUpdateBodies = () =>
  mixed(requestBody({ attributes: fc.oneof(attributes, fc.constant(null)) }, ['attributes']), { attributes: { a: 1, b: 'x', c: true } });

const batchBodies = (ids: Ids) =>
  mixed(
    requestBody({ file_ids: fc.array(fileRef(ids), { minLength: 1, maxLength: 3 }), attributes: field(fc.oneof(attributes, fc.constant(null))), chunking_strategy: field(chunkingStrategy) }, ['file_ids']),
    { file_ids: [ids.fileId], attributes: { a: 1 } },
  );

const searchBodies = () =>
  mixed(
    requestBody({
      query: fc.oneof(fc.string({ maxLength: 300 }), fc.array(fc.string({ maxLength: 50 }), { maxLength: 10 })),
      max_num_results: field(smallInt(1, 100)),
      filters: field(fc.oneof(attributeFilter, fc.constant(null))),
      ranking_options: field(shape({ score_threshold: field(ranged(0, 1)), ranker: field(fc.string()) })),
      rewrite_query: field(fc.boolean()),
    }, ['query']),
    { query: 'parcels', max_num_results: 5, filters: { type: 'eq', key: 'a', value: 1 } },
  );

function targets(): Target[] {
  const kbTargets = (mount: string): Target[] => [
    { route: `POST ${mount}`, path: () => mount, bodies: kbCreateBodies },
    { route: `POST ${mount}/:kbId`, path: (ids) => `${mount}/${ids.kbId}`, bodies: kbUpdateBodies },
    { route: `POST ${mount}/:kbId/files`, path: (ids) => `${mount}/${ids.attachKbId}/files`, bodies: attachBodies },
    { route: `POST ${mount}/:kbId/files/:fileId`, path: (ids) => `${mount}/${ids.attachKbId}/files/${ids.fileId}`, bodies: fileUpdateBodies },
    { route: `POST ${mount}/:kbId/file_batches`, path: (ids) => `${mount}/${ids.attachKbId}/file_batches`, bodies: batchBodies },
    // Reads no body: a smaller sample shows that any body is ignored.
    { route: `POST ${mount}/:kbId/file_batches/:batchId/cancel`, runs: Math.ceil(RUNS / 5), path: (ids) => `${mount}/${ids.attachKbId}/file_batches/${ids.batchId}/cancel`, bodies: () => mixed(fc.constant({}), { a: 1 }) },
    { route: `POST ${mount}/:kbId/search`, path: (ids) => `${mount}/${ids.kbId}/search`, bodies: searchBodies },
  ];
  return [
    { route: 'POST /v1/chat/completions', path: () => '/v1/chat/completions', bodies: chatBodies },
    { route: 'POST /v1/completions', path: () => '/v1/completions', bodies: completionBodies },
    { route: 'POST /v1/embeddings', path: () => '/v1/embeddings', bodies: embeddingBodies },
    // Multipart only: JSON of any shape must be refused cleanly.
    { route: 'POST /v1/files', accepts: false, path: () => '/v1/files', bodies: () => mixed(requestBody({ purpose: field(fc.constantFrom('assistants', 'x')), file: field(fc.string()) }), { purpose: 'assistants' }) },
    ...kbTargets('/v1/knowledge_bases'),
    ...kbTargets('/v1/vector_stores'),
  ];
}

// ---- the run ---------------------------------------------------------------------------------

interface Outcome {
  status: number;
  text: string;
}

function isEnvelope(text: string): boolean {
  try {
    const { error } = JSON.parse(text) as { error?: Record<string, unknown> };
    return !!error && typeof error.message === 'string' && typeof error.type === 'string' && 'param' in error && 'code' in error;
  } catch {
    return false;
  }
}

const show = (body: Body): string => {
  const text = body instanceof Raw ? `raw ${body.text}` : JSON.stringify(body);
  return text.length > 400 ? `${text.slice(0, 400)}… (${text.length} chars)` : text;
};

describe(`fuzzing every JSON endpoint (${RUNS} bodies each, FUZZ_SEED=${SEED})`, () => {
  let upstream: StubUpstream;
  let cairn: TestCairn;
  let pool: Pool;
  const ids = {} as Ids;

  const send = async (path: string, body: Body): Promise<Outcome> => {
    const response = await pool.request({
      method: 'POST',
      path,
      headers: { authorization: `Bearer ${cairn.key}`, 'content-type': 'application/json' },
      body: body instanceof Raw ? body.text : JSON.stringify(body),
    });
    return { status: response.statusCode, text: await response.body.text() };
  };

  before(async () => {
    upstream = await StubUpstream.start({ name: 'fuzz' });
    cairn = await startCairn({
      modelConfig: {
        models: [stubModel('stub', [upstream.url])],
        embeddings: [{ id: 'remote', provider: 'openai', base_url: upstream.url, model: 'stub-embedder' }],
      },
    });
    pool = new Pool(cairn.url, { connections: CONCURRENCY, pipelining: 1 });
    const client = cairn.client();
    const file = await client.files.create({ file: await toFile(Buffer.from('Parcels ship from Rotterdam every Tuesday.'), 'ship.txt'), purpose: 'assistants' });
    const kb = await client.vectorStores.create({ name: 'search', ...({ embedding_model: 'none' } as object) });
    await client.vectorStores.files.createAndPoll(kb.id, { file_id: file.id });
    const attachKb = await client.vectorStores.create({ name: 'attach', ...({ embedding_model: 'none' } as object) });
    const batch = await client.vectorStores.fileBatches.createAndPoll(attachKb.id, { file_ids: [file.id] });
    Object.assign(ids, { kbId: kb.id, attachKbId: attachKb.id, fileId: file.id, batchId: batch.id });
  });
  after(async () => {
    await pool?.close();
    await cairn.stop();
    await upstream.close();
  });

  it('fuzzes every POST route the app serves', () => {
    const served = routesOf(createApp(cairn.services)).map(routeKey).filter((route) => route.startsWith('POST '));
    assert.deepEqual(served.filter((route) => !targets().some((target) => target.route === route)), [], 'POST routes without a fuzz target');
  });

  for (const target of targets()) {
    it(`${target.route}: never 5xx, errors always in OpenAI's envelope`, async () => {
      const bodies = fc.sample(target.bodies(ids), { numRuns: target.runs ?? RUNS, seed: SEED });
      const path = target.path(ids);
      const failures: string[] = [];
      const statuses = new Map<number, number>();
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < bodies.length && failures.length < 5) {
          const body = bodies[next++];
          const { status, text } = await send(path, body);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          if (status >= 500) failures.push(`${status} ${text.slice(0, 300)} ← ${show(body)}`);
          else if (status >= 400 && !isEnvelope(text)) failures.push(`${status} without the envelope: ${text.slice(0, 300)} ← ${show(body)}`);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      assert.deepEqual(failures, [], `FUZZ_SEED=${SEED}`);
      const summary = JSON.stringify(Object.fromEntries(statuses));
      assert.equal([...statuses.values()].reduce((sum, count) => sum + count, 0), bodies.length, summary);
      assert.ok([...statuses.keys()].some((status) => status >= 400), `some bodies were refused: ${summary}`);
      // Valid bodies get through too, so the fuzzing reaches the services and not only validation.
      if (target.accepts !== false) assert.ok(statuses.has(200), `some bodies were accepted: ${summary}`);
    });
  }

  it('left no trace: no prototype pollution, no unhandled error, still serving', async () => {
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype was polluted');
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
    const unhandled = cairn.logs.lines.filter((line) => line.includes('unhandled error'));
    assert.deepEqual(unhandled.slice(0, 3), [], 'unhandled errors were logged');
    const health = await pool.request({ method: 'GET', path: '/healthz' });
    assert.equal(health.statusCode, 200);
    await health.body.dump();
    const chat = await send('/v1/chat/completions', { model: 'stub', messages: [{ role: 'user', content: 'still there?' }] });
    assert.equal(chat.status, 200, chat.text);
    const search = await send(`/v1/knowledge_bases/${ids.kbId}/search`, { query: 'Rotterdam parcels' });
    assert.equal(search.status, 200, search.text);
    assert.match(search.text, /Rotterdam/);
  });
});
