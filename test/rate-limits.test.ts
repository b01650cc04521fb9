/** Rate limits per key (requests and tokens per minute) and storage quotas per project, through the openai SDK. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { formatDuration } from '../src/http/rate-limit.ts';
import { MemoryRateLimiter } from '../src/limits/rate-limiter.ts';
import { RedisRateLimiter } from '../src/limits/redis-rate-limiter.ts';
import { createTestDatabase, startCairn, stubModel, type TestCairn, type TestDatabase } from './helpers/harness.ts';
import { StubUpstream } from './helpers/stub-upstream.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const quiet = { warn() {} } as never;

function header(response: Response, name: string): string | null {
  return response.headers.get(name);
}

async function refused(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.RateLimitError>> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof OpenAI.RateLimitError, `expected a RateLimitError, got ${String(error)}`);
    return error;
  }
  assert.fail('the request was not refused');
}

describe('token buckets', () => {
  it('formats reset durations like OpenAI (Go durations)', () => {
    assert.equal(formatDuration(20), '20ms');
    assert.equal(formatDuration(1_000), '1s');
    assert.equal(formatDuration(1_500), '1.5s');
    assert.equal(formatDuration(360_000), '6m0s');
    assert.equal(formatDuration(3_723_000), '1h2m3s');
  });

  it('refills continuously: a client under its per-minute limit is never refused', async () => {
    let now = 0;
    const limiter = new MemoryRateLimiter(() => now);
    const check = () => limiter.check({ key: 'k', limits: { rpm: 3 } });
    for (let i = 0; i < 3; i += 1) assert.equal((await check()).allowed, true);
    const fourth = await check();
    assert.equal(fourth.allowed, false);
    assert.equal(fourth.refusedBy, 'requests');
    assert.equal(fourth.retryAfterMs, 20_000);
    now += 20_000;
    const later = await check();
    assert.equal(later.allowed, true);
    assert.deepEqual(later.requests, { limit: 3, remaining: 0, resetMs: 60_000 });
  });

  it('charges tokens only when both buckets allow, and corrections move the balance', async () => {
    const now = 0;
    const limiter = new MemoryRateLimiter(() => now);
    const first = await limiter.check({ key: 'k', limits: { rpm: 10, tpm: 100 }, tokens: 80 });
    assert.equal(first.tokens?.remaining, 20);
    const tooMany = await limiter.check({ key: 'k', limits: { rpm: 10, tpm: 100 }, tokens: 30 });
    assert.equal(tooMany.allowed, false);
    assert.equal(tooMany.refusedBy, 'tokens');
    assert.equal(tooMany.requests?.remaining, 9, 'a refused request is not charged');
    await limiter.correctTokens('k', 100, -70); // the call used 10 tokens, not 80
    const after = await limiter.check({ key: 'k', limits: { rpm: 10, tpm: 100 }, tokens: 30 });
    assert.equal(after.allowed, true);
    assert.equal(after.tokens?.remaining, 60);
    const huge = await limiter.check({ key: 'k', limits: { tpm: 100 }, tokens: 101 });
    assert.equal(huge.allowed, false);
    assert.equal(huge.retryAfterMs, undefined, 'a request larger than the limit can never pass');
  });

  it('keeps a token debt until it has refilled, however long the bucket sits idle', async () => {
    let now = 0;
    const limiter = new MemoryRateLimiter(() => now);
    await limiter.check({ key: 'debtor', limits: { tpm: 1_000 }, tokens: 1_000 });
    await limiter.correctTokens('debtor', 1_000, 49_000); // the answer was 49,000 tokens longer than estimated
    now += 11 * 60_000;
    for (let i = 0; i < 10_000; i += 1) await limiter.check({ key: `busy-${i % 3}`, limits: { rpm: 1_000_000 } }); // sweeps idle buckets
    const later = await limiter.check({ key: 'debtor', limits: { tpm: 1_000 }, tokens: 1 });
    assert.equal(later.allowed, false, '39,000 tokens of debt are left after 11 minutes');
    now += 40 * 60_000;
    assert.equal((await limiter.check({ key: 'debtor', limits: { tpm: 1_000 }, tokens: 1 })).allowed, true);
  });

  it('in Redis, shares one bucket between limiter instances and agrees with the in-memory arithmetic', async () => {
    const key = `test-${process.pid}-${Date.now()}`;
    const a = new RedisRateLimiter(REDIS_URL, quiet);
    const b = new RedisRateLimiter(REDIS_URL, quiet);
    try {
      const limits = { rpm: 3, tpm: 100 };
      assert.equal((await a.check({ key, limits, tokens: 60 })).tokens?.remaining, 40);
      assert.equal((await b.check({ key, limits })).requests?.remaining, 1);
      const third = await a.check({ key, limits, tokens: 50 });
      assert.equal(third.allowed, false);
      assert.equal(third.refusedBy, 'tokens');
      await b.correctTokens(key, 100, -50);
      const fourth = await a.check({ key, limits, tokens: 50 });
      assert.equal(fourth.allowed, true);
      assert.ok(fourth.tokens!.remaining >= 40 && fourth.tokens!.remaining <= 42);
      const fifth = await b.check({ key, limits });
      assert.equal(fifth.allowed, false);
      assert.equal(fifth.refusedBy, 'requests');
      assert.ok(fifth.retryAfterMs! > 19_000 && fifth.retryAfterMs! <= 20_000);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('lets requests through when Redis cannot be reached', async () => {
    const limiter = new RedisRateLimiter('redis://127.0.0.1:1', quiet);
    try {
      const decision = await limiter.check({ key: 'k', limits: { rpm: 1 } });
      assert.deepEqual(decision, { allowed: true });
    } finally {
      await limiter.close();
    }
  });
});

describe('rate limits through the API', () => {
  let upstream: StubUpstream;
  let cairn: TestCairn;

  before(async () => {
    upstream = await StubUpstream.start({ name: 'limited' });
    cairn = await startCairn({ modelConfig: { models: [stubModel('llama', [upstream.url])] }, env: { CAIRN_AUTH_CACHE_TTL_MS: '0' } });
  });

  after(async () => {
    await cairn.stop();
    await upstream.close();
  });

  it('sends no rate-limit headers when no limit applies', async () => {
    const { response } = await cairn.client().models.list().withResponse();
    assert.equal(response.status, 200);
    assert.equal(header(response, 'x-ratelimit-limit-requests'), null);
  });

  it("counts every request against the key's requests per minute, with OpenAI's headers and a 429 with retry-after", async () => {
    const { key } = await cairn.services.keys.create('rpm-project', 'limited', { rpm: 3 });
    const client = cairn.client({ apiKey: key });
    const remaining: string[] = [];
    for (const call of [() => client.models.list().withResponse(), () => client.files.list().withResponse(), () => client.models.list().withResponse()]) {
      const { response } = await call();
      assert.equal(header(response, 'x-ratelimit-limit-requests'), '3');
      assert.match(header(response, 'x-ratelimit-reset-requests') ?? '', /^(\d+ms|\d+(\.\d+)?s)$/);
      remaining.push(header(response, 'x-ratelimit-remaining-requests')!);
    }
    assert.deepEqual(remaining, ['2', '1', '0']);
    const error = await refused(client.models.list());
    assert.equal(error.status, 429);
    assert.equal(error.code, 'rate_limit_exceeded');
    assert.match(error.message, /requests per minute \(limit 3\)/);
    assert.ok(Number(error.headers?.get('retry-after')) >= 19, 'retry-after tells when a request is allowed again');
    assert.equal(error.headers?.get('x-ratelimit-remaining-requests'), '0');
    // Another key of the same project has its own bucket.
    const other = await cairn.services.keys.create('rpm-project', 'other', { rpm: 3 });
    await cairn.client({ apiKey: other.key }).models.list();
  });

  it('charges estimated tokens up front and corrects them with the real usage', async () => {
    const { key } = await cairn.services.keys.create('tpm-project', undefined, { tpm: 1_000 });
    const client = cairn.client({ apiKey: key });
    const content = 'word '.repeat(100); // 500 characters: estimated 125 tokens (+1 for the role), the stub counts 100
    const first = await client.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content }], max_tokens: 500 }).withResponse();
    assert.equal(header(first.response, 'x-ratelimit-limit-tokens'), '1000');
    assert.equal(header(first.response, 'x-ratelimit-remaining-tokens'), String(1_000 - 126 - 500), 'the estimate includes max_tokens');
    const used = first.data.usage!.total_tokens;
    const { response } = await client.models.list().withResponse();
    const remaining = Number(header(response, 'x-ratelimit-remaining-tokens'));
    // Corrected to the real usage, plus what refilled meanwhile (1,000 per minute: a few tokens).
    assert.notEqual(used, 126 + 500);
    assert.ok(remaining >= 1_000 - used - 1 && remaining <= 1_000 - used + 10, `remaining ${remaining} after using ${used}`);

    const tooLarge = await refused(client.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'x'.repeat(8_000) }] }));
    assert.match(tooLarge.message, /Request too large/);
    assert.equal(tooLarge.headers?.get('retry-after'), null, 'waiting would not help');
    // Express also routes these spellings to chat completions; they are charged the same.
    for (const path of ['/chat/completions/', '/Chat/Completions']) {
      const response = await fetch(`${cairn.baseURL}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'x'.repeat(8_000) }] }),
      });
      assert.equal(response.status, 429, path);
    }
  });

  it("gives keys their project's limits unless the key has its own", async () => {
    await cairn.services.keys.setProjectLimits('defaults-project', { rpm: 1 });
    const inherits = cairn.client({ apiKey: (await cairn.services.keys.create('defaults-project')).key });
    const { response } = await inherits.models.list().withResponse();
    assert.equal(header(response, 'x-ratelimit-limit-requests'), '1');
    await refused(inherits.models.list());

    const own = await cairn.services.keys.create('defaults-project', 'own', { rpm: 5 });
    const ownResponse = await cairn.client({ apiKey: own.key }).models.list().withResponse();
    assert.equal(header(ownResponse.response, 'x-ratelimit-limit-requests'), '5');

    assert.equal(await cairn.services.keys.setKeyLimits(own.info.id, { rpm: null }), true);
    const cleared = await cairn.client({ apiKey: own.key }).models.list().withResponse();
    assert.equal(header(cleared.response, 'x-ratelimit-limit-requests'), '1', 'clearing the key limit inherits the project limit again');
  });
});

describe('rate limits shared by API replicas (server mode, Redis)', () => {
  let database: TestDatabase;
  let replicas: TestCairn[];

  before(async () => {
    database = await createTestDatabase();
    const env = { DATABASE_URL: database.url, REDIS_URL: REDIS_URL, CAIRN_QUEUE_NAME: `rate-test-${process.pid}`, CAIRN_DEFAULT_RPM: '3' };
    replicas = [await startCairn({ env }), await startCairn({ env })];
  });

  after(async () => {
    for (const replica of replicas) await replica.stop();
    await database.drop();
  });

  it('applies the server default to a key on every replica together', async () => {
    const key = await replicas[0]!.newKey('shared');
    const [a, b] = replicas.map((replica) => replica.client({ apiKey: key }));
    await a!.models.list();
    await b!.models.list();
    const { response } = await a!.models.list().withResponse();
    assert.equal(header(response, 'x-ratelimit-remaining-requests'), '0');
    await refused(b!.models.list());
  });
});

describe('storage quota per project', () => {
  let cairn: TestCairn;

  before(async () => {
    cairn = await startCairn({ env: { CAIRN_DEFAULT_STORAGE_QUOTA_BYTES: '1000' } });
  });

  after(async () => cairn.stop());

  const upload = async (client: OpenAI, bytes: number, name = 'notes.md') =>
    client.files.create({ file: await toFile(Buffer.alloc(bytes, 'a'), name), purpose: 'assistants' });

  it('refuses an upload over the quota with 413 and keeps what was stored', async () => {
    const client = cairn.client();
    const first = await upload(client, 600);
    const error = await upload(client, 600).then(
      () => assert.fail('the upload went over the quota'),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof OpenAI.APIError && error.status === 413, String(error));
    assert.equal(error.code, 'storage_quota_exceeded');
    assert.match(error.message, /600 bytes of its 1000-byte quota/);
    assert.deepEqual((await client.files.list()).data.map((file) => file.id), [first.id]);
    await client.files.delete(first.id);
    await upload(client, 600);
    await upload(client, 400);
    // Full: refused before the body is read, so the message cannot name the file's size.
    const full = await upload(client, 10).then(
      () => assert.fail('the upload went over the quota'),
      (caught: unknown) => caught,
    );
    assert.ok(full instanceof OpenAI.APIError && full.status === 413 && full.code === 'storage_quota_exceeded', String(full));
    assert.match(full.message, /stores 1000 bytes of its 1000-byte quota\. Delete files/);
  });

  it('holds under concurrent uploads, and a project quota overrides the default', async () => {
    const key = await cairn.newKey('racing');
    const client = cairn.client({ apiKey: key });
    const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => upload(client, 300, `part-${i}.md`)));
    assert.equal(results.filter((result) => result.status === 'fulfilled').length, 3, 'exactly 3 × 300 bytes fit in 1000');
    await cairn.services.keys.setProjectLimits('racing', { storageQuotaBytes: 2_000 });
    await upload(client, 900);
  });
});
