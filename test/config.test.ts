import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.ts';

async function configFile(name: string, text: string): Promise<string> {
  const file = path.join(await mkdtemp(path.join(tmpdir(), 'cairn-config-')), name);
  await writeFile(file, text);
  return file;
}

describe('config', () => {
  it('has the documented defaults: loopback, embedded, no models', () => {
    const config = loadConfig({});
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.port, 8080);
    assert.equal(config.embedded, true);
    assert.equal(config.defaultEmbeddingModel, 'Xenova/bge-small-en-v1.5');
    assert.equal(config.allowModelDownload, true);
    assert.deepEqual(config.models, []);
  });

  it('names the bad variable', () => {
    assert.throws(() => loadConfig({ CAIRN_PORT: 'eighty' }), (error: unknown) => error instanceof ConfigError && /CAIRN_PORT/.test(error.message));
    assert.throws(() => loadConfig({ DATABASE_URL: 'not a url' }), /DATABASE_URL/);
    assert.throws(() => loadConfig({ CAIRN_ALLOW_MODEL_DOWNLOAD: 'maybe' }), /CAIRN_ALLOW_MODEL_DOWNLOAD/);
    assert.equal(loadConfig({ CAIRN_PORT: '' }).port, 8080, 'empty means unset');
  });

  it('bounds slow clients: headers within 60 s, whole requests within 300 s, headers never longer than requests', () => {
    const defaults = loadConfig({});
    assert.deepEqual([defaults.headersTimeoutMs, defaults.requestTimeoutMs], [60_000, 300_000]);
    const set = loadConfig({ CAIRN_HEADERS_TIMEOUT_MS: '1000', CAIRN_REQUEST_TIMEOUT_MS: '3000' });
    assert.deepEqual([set.headersTimeoutMs, set.requestTimeoutMs], [1_000, 3_000]);
    assert.throws(() => loadConfig({ CAIRN_HEADERS_TIMEOUT_MS: '5000', CAIRN_REQUEST_TIMEOUT_MS: '1000' }), /CAIRN_HEADERS_TIMEOUT_MS: must not exceed CAIRN_REQUEST_TIMEOUT_MS/);
  });

  it('reads a YAML model config with env interpolation, defaults and per-model overrides', async () => {
    const file = await configFile(
      'models.yaml',
      `defaults:
  retries: { max_retries: 4 }
models:
  - id: llama-3.1-8b
    aliases: [gpt-4o-mini]
    context_window: 8192
    upstreams:
      - base_url: http://vllm-a:8000/v1
        model: meta-llama/Llama-3.1-8B-Instruct
        api_key: \${VLLM_API_KEY}
      - base_url: \${VLLM_B_URL:-http://vllm-b:8000/v1}
        model: meta-llama/Llama-3.1-8B-Instruct
    fallbacks: [big]
    timeouts: { first_byte_ms: 1000 }
  - id: big
    upstreams: [{ base_url: http://vllm-c:8000/v1, model: big }]
    retries: { max_retries: 0 }
embeddings:
  - id: bge
    provider: local
    source: Xenova/bge-small-en-v1.5
`,
    );
    const config = loadConfig({ CAIRN_CONFIG: file, VLLM_API_KEY: 'secret' });
    const [llama, big] = config.models;
    assert.equal(llama!.upstreams[0]!.api_key, 'secret');
    assert.equal(llama!.upstreams[1]!.base_url, 'http://vllm-b:8000/v1');
    assert.equal(llama!.timeouts.first_byte_ms, 1000);
    assert.equal(llama!.timeouts.connect_ms, 5000);
    assert.equal(llama!.retries.max_retries, 4);
    assert.equal(big!.retries.max_retries, 0);
    assert.equal(config.embeddings[0]!.provider, 'local');
  });

  it('rejects a model config with the path of the problem', async () => {
    const missingVar = await configFile('a.json', JSON.stringify({ models: [{ id: 'm', upstreams: [{ base_url: 'http://x/v1', model: 'm', api_key: '${NOPE}' }] }] }));
    assert.throws(() => loadConfig({ CAIRN_CONFIG: missingVar }), /NOPE is not set/);
    const badUrl = await configFile('b.json', JSON.stringify({ models: [{ id: 'm', upstreams: [{ base_url: 'nope', model: 'm' }] }] }));
    assert.throws(() => loadConfig({ CAIRN_CONFIG: badUrl }), /models\.0\.upstreams\.0\.base_url/);
    const unknownFallback = await configFile('c.json', JSON.stringify({ models: [{ id: 'm', upstreams: [{ base_url: 'http://x/v1', model: 'm' }], fallbacks: ['ghost'] }] }));
    assert.throws(() => loadConfig({ CAIRN_CONFIG: unknownFallback }), /unknown model "ghost"/);
    const duplicate = await configFile('d.json', JSON.stringify({ models: [
      { id: 'm', upstreams: [{ base_url: 'http://x/v1', model: 'm' }] },
      { id: 'n', aliases: ['m'], upstreams: [{ base_url: 'http://x/v1', model: 'n' }] },
    ] }));
    assert.throws(() => loadConfig({ CAIRN_CONFIG: duplicate }), /"m" is used by both/);
    const typo = await configFile('e.yaml', 'modles: []\n');
    assert.throws(() => loadConfig({ CAIRN_CONFIG: typo }), /modles/);
    assert.throws(() => loadConfig({ CAIRN_CONFIG: '/does/not/exist.yaml' }), /CAIRN_CONFIG: cannot read/);
  });

  it('validates truncation settings of embedding models: a list of distinct sizes or matryoshka, not both', async () => {
    const ok = await configFile('m.json', JSON.stringify({ embeddings: [
      { id: 'nomic', provider: 'local', source: 'nomic-ai/nomic-embed-text-v1.5', dimensions: [256, 512] },
      { id: 'remote', provider: 'openai', base_url: 'http://x/v1', matryoshka: true },
    ] }));
    const config = loadConfig({ CAIRN_CONFIG: ok });
    assert.deepEqual((config.embeddings[0] as { dimensions?: number[] }).dimensions, [256, 512]);
    assert.equal(config.embeddings[1]!.matryoshka, true);
    const repeated = await configFile('n.json', JSON.stringify({ embeddings: [{ id: 'e', provider: 'local', source: 's', dimensions: [256, 256] }] }));
    assert.throws(() => loadConfig({ CAIRN_CONFIG: repeated }), /embeddings\.0\.dimensions.*must not repeat/s);
    const both = await configFile('o.json', JSON.stringify({ embeddings: [{ id: 'e', provider: 'local', source: 's', dimensions: [256], matryoshka: true }] }));
    assert.throws(() => loadConfig({ CAIRN_CONFIG: both }), /embeddings\.0\.matryoshka.*not both/s);
    const notPositive = await configFile('p.json', JSON.stringify({ embeddings: [{ id: 'e', provider: 'local', source: 's', dimensions: [0] }] }));
    assert.throws(() => loadConfig({ CAIRN_CONFIG: notPositive }), /embeddings\.0\.dimensions\.0/);
  });
});
