/**
 * Hostile uploads against a real server: oversize bodies, slow-loris headers and bodies, path-traversal and
 * control-character filenames, a ZIP-bomb DOCX (honest and lying about its size), a 10,000-page PDF and
 * 100,000 nested HTML tags. Each must end in a clear error (413, 408, a sanitised name, a failed file with
 * `last_error`) in bounded time and memory, leave nothing half-stored, and leave the rest of the knowledge
 * base completed and searchable.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { startCairn, type TestCairn } from './helpers/harness.ts';
import { bombPart, makeDocx, makeLongPdf, type ZipEntry } from './helpers/hostile-documents.ts';
import { rawUpload, slowClient } from './helpers/raw-http.ts';
import { until } from './helpers/wait.ts';

const MAX_UPLOAD = 8 * 1024 * 1024;
const HEADERS_TIMEOUT_MS = 1_000;
const REQUEST_TIMEOUT_MS = 3_000;
const MB = 1024 * 1024;

const GOOD_TEXT = 'The lighthouse on Skerry Point is painted red and white and its lamp turns every twelve seconds.';

/** Every file below `dir`, relative to it ([] when `dir` does not exist). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  return entries.filter((entry) => entry.isFile()).map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name))).sort();
}

/** Samples the process RSS while `work` runs (the in-process ingestion runs in this process). */
async function peakRssGrowth<T>(work: () => Promise<T>): Promise<{ result: T; growthMb: number }> {
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  try {
    const result = await work();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { result, growthMb: (peak - baseline) / MB };
  } finally {
    clearInterval(sampler);
  }
}

describe('hostile uploads', () => {
  let cairn: TestCairn;
  let client: OpenAI;
  let dataDir: string;
  let kbId: string;
  let goodFileId: string;
  let bomb: Buffer;
  let bombMain: ZipEntry;
  let longPdf: Buffer;

  const stagingDir = () => path.join(dataDir, 'blobs', 'staging');
  const allFileIds = async () => {
    const ids: string[] = [];
    for await (const file of client.files.list()) ids.push(file.id);
    return ids.sort();
  };
  /** The knowledge base's good file is still completed and found by search. */
  async function assertGoodFileIntact(): Promise<void> {
    const good = await client.vectorStores.files.retrieve(goodFileId, { vector_store_id: kbId });
    assert.equal(good.status, 'completed');
    const hits = await client.vectorStores.search(kbId, { query: 'what colour is the lighthouse on Skerry Point' });
    assert.equal(hits.data[0]?.file_id, goodFileId);
    assert.match(hits.data[0]!.content[0]!.text, /painted red and white/);
  }
  /** Attaches a file and waits for its ingestion to end, measuring time and memory. */
  async function ingest(bytes: Buffer, filename: string) {
    const started = Date.now();
    const { result, growthMb } = await peakRssGrowth(async () =>
      client.vectorStores.files.uploadAndPoll(kbId, await toFile(bytes, filename), { pollIntervalMs: 50 }),
    );
    return { file: result, elapsedMs: Date.now() - started, growthMb };
  }

  before(async () => {
    bombMain = bombPart(300);
    bomb = makeDocx(bombMain);
    assert.ok(bomb.length < MB, `the 300 MB bomb is ${bomb.length} bytes on the wire`);
    longPdf = await makeLongPdf(10_000);
    assert.ok(longPdf.length < MAX_UPLOAD, `the 10,000-page PDF is ${longPdf.length} bytes`);

    cairn = await startCairn({
      env: {
        CAIRN_MAX_UPLOAD_BYTES: String(MAX_UPLOAD),
        CAIRN_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        CAIRN_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      },
    });
    client = cairn.client();
    dataDir = cairn.services.config.dataDir;
    const kb = await client.vectorStores.create({ name: 'hostile', ...({ embedding_model: 'none' } as object) });
    kbId = kb.id;
    const good = await client.vectorStores.files.uploadAndPoll(kbId, await toFile(Buffer.from(GOOD_TEXT), 'lighthouse.txt'), { pollIntervalMs: 50 });
    assert.equal(good.status, 'completed');
    goodFileId = good.id;
  });
  after(() => cairn?.stop());

  it('refuses oversize uploads with a 413 envelope, declared or discovered mid-stream, and stores nothing', async () => {
    const filesBefore = await allFileIds();
    const blobsBefore = await filesUnder(path.join(dataDir, 'blobs', 'files'));
    const tooLarge = (error: unknown) => {
      assert.ok(error instanceof OpenAI.APIError, String(error));
      assert.equal(error.status, 413);
      assert.equal(error.type, 'invalid_request_error');
      assert.equal(error.param, 'file');
      assert.match(error.message, new RegExp(`maximum upload size of ${MAX_UPLOAD} bytes`));
      return true;
    };
    // Content-Length far over the limit: refused before the body is read.
    await assert.rejects(client.files.create({ file: await toFile(Buffer.alloc(MAX_UPLOAD + 2 * MB, 97), 'huge.txt'), purpose: 'assistants' }), tooLarge);
    // Content-Length within the multipart allowance, file one byte over: refused once the limit is crossed,
    // after the rest of it was streamed to the staging area.
    await assert.rejects(client.files.create({ file: await toFile(Buffer.alloc(MAX_UPLOAD + 1, 97), 'just-over.txt'), purpose: 'assistants' }), tooLarge);

    await until('the staging area to be empty', async () => (await filesUnder(stagingDir())).length === 0, 5_000);
    assert.deepEqual(await allFileIds(), filesBefore);
    assert.deepEqual(await filesUnder(path.join(dataDir, 'blobs', 'files')), blobsBefore);
  });

  it('cuts slow-loris connections (headers byte by byte, a trickled body) while serving other clients', async () => {
    const port = Number(new URL(cairn.url).port);
    const filesBefore = await allFileIds();
    const slowHeaders = Buffer.from(`GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${cairn.key}\r\nX-Slow: ${'a'.repeat(300)}`);
    const boundary = 'cairn-slow-loris';
    // Complete headers and the start of a file part (64 KB, so a partial blob is staged), then a trickle.
    const bodyHead = [
      'POST /v1/files HTTP/1.1',
      'Host: 127.0.0.1',
      `Authorization: Bearer ${cairn.key}`,
      `Content-Type: multipart/form-data; boundary=${boundary}`,
      `Content-Length: ${MB}`,
      '',
      `--${boundary}`,
      'Content-Disposition: form-data; name="purpose"',
      '',
      'assistants',
      `--${boundary}`,
      'Content-Disposition: form-data; name="file"; filename="slow.txt"',
      'Content-Type: text/plain',
      '',
      'x'.repeat(64 * 1024),
    ].join('\r\n');
    const headerClients = Promise.all(Array.from({ length: 5 }, () => slowClient(port, '', slowHeaders, 20)));
    const bodyClients = Promise.all(Array.from({ length: 3 }, () => slowClient(port, bodyHead, Buffer.alloc(400, 0x78), 20)));

    // While they hold their connections, others are served promptly.
    await until('the trickled uploads to be staged', async () => (await filesUnder(stagingDir())).length === 3, REQUEST_TIMEOUT_MS);
    const servingStarted = Date.now();
    assert.ok((await client.models.list()).data.length > 0);
    const meanwhile = await client.files.create({ file: await toFile(Buffer.from('served meanwhile'), 'meanwhile.txt'), purpose: 'assistants' });
    const servedAt = Date.now();
    assert.ok(servedAt - servingStarted < 2_000, `other clients waited ${servedAt - servingStarted} ms`);

    for (const result of await headerClients) {
      assert.ok(result.elapsedMs >= HEADERS_TIMEOUT_MS - 50, `headers cut after ${result.elapsedMs} ms`);
      assert.ok(result.elapsedMs < HEADERS_TIMEOUT_MS + 2_000, `headers cut after ${result.elapsedMs} ms`);
      assert.match(result.reply, /^HTTP\/1\.1 408 /);
      assert.ok(result.bytesSent < slowHeaders.length, 'cut before the headers were complete');
    }
    for (const result of await bodyClients) {
      assert.ok(result.elapsedMs >= REQUEST_TIMEOUT_MS - 50, `body cut after ${result.elapsedMs} ms`);
      assert.ok(result.elapsedMs < REQUEST_TIMEOUT_MS + 2_500, `body cut after ${result.elapsedMs} ms`);
      assert.match(result.reply, /^HTTP\/1\.1 408 /, 'the partial upload was refused, not accepted');
      assert.ok(servedAt < result.closedAt, 'the other clients were served while this one held its connection');
    }

    await until('the partial uploads to be discarded', async () => (await filesUnder(stagingDir())).length === 0, 5_000);
    assert.deepEqual(await allFileIds(), [...filesBefore, meanwhile.id].sort(), 'only the well-behaved upload was stored');
  });

  it('stores path-traversal and control-character filenames under a sanitised name, writing only inside the data dir', async () => {
    const parent = path.dirname(dataDir);
    const besideDataDir = await readdir(parent);
    const viaSdk: Array<[string, string]> = [
      ['../../etc/passwd', 'passwd'],
      ['/etc/shadow', 'shadow'],
      ['..\\..\\windows\\win.ini', 'win.ini'],
      // Never URL-decoded anywhere, so it stays a harmless literal name.
      ['%2e%2e%2f%2e%2e%2fetc%2fhosts', '%2e%2e%2f%2e%2e%2fetc%2fhosts'],
      ['invoice\u202Efdp.exe', 'invoicefdp.exe'],
      ['line\r\nbreak\t.txt', 'linebreak.txt'],
      ['....', 'file'],
      ['.env', 'env'],
    ];
    const stored = new Map<string, string>();
    for (const [sent, expected] of viaSdk) {
      const file = await client.files.create({ file: await toFile(Buffer.from(`named ${JSON.stringify(sent)}`), sent), purpose: 'assistants' });
      assert.equal(file.filename, expected, `sent ${JSON.stringify(sent)}`);
      assert.equal((await client.files.retrieve(file.id)).filename, expected);
      stored.set(expected, file.id);
    }

    // Raw Content-Disposition bytes the SDK would never send: RFC 5987 encoded traversal, encoded NUL and RTL
    // override, raw control characters, and bytes that are not UTF-8.
    const raw: Array<[Buffer, string]> = [
      [Buffer.from("filename*=UTF-8''..%2F..%2Fetc%2Fpasswd"), 'passwd'],
      [Buffer.from("filename*=UTF-8''evil%E2%80%AEtxt%00%07%1B%5B31m.exe"), 'eviltxt[31m.exe'],
      [Buffer.concat([Buffer.from('filename="'), Buffer.from([0xff, 0xfe, 0x2e, 0x2e, 0x2f, 0x61]), Buffer.from('.txt"')]), 'a.txt'],
    ];
    for (const [disposition, expected] of raw) {
      const reply = await rawUpload(cairn.url, cairn.key, disposition, Buffer.from('raw name'));
      assert.equal(reply.status, 200, `${disposition.toString('latin1')}: ${reply.body}`);
      assert.equal((JSON.parse(reply.body) as { filename: string }).filename, expected, disposition.toString('latin1'));
    }
    // Raw NUL, BEL or ESC bytes in the part header are malformed multipart: a 400 envelope, nothing stored.
    const filesBefore = await allFileIds();
    for (const control of ['\u0000', '\u0007', '\u001b']) {
      const reply = await rawUpload(cairn.url, cairn.key, Buffer.from(`filename="bad${control}name.txt"`, 'latin1'), Buffer.from('raw name'));
      assert.equal(reply.status, 400, reply.body);
      const { error } = JSON.parse(reply.body) as { error: { type: string; param: string; message: string } };
      assert.deepEqual([error.type, error.param, error.message], ['invalid_request_error', 'file', 'Invalid multipart upload: Malformed part header']);
    }
    assert.deepEqual(await allFileIds(), filesBefore);
    await until('the staging area to be empty', async () => (await filesUnder(stagingDir())).length === 0, 5_000);

    // Downloads name the sanitised file, never a path.
    const download = await fetch(`${cairn.baseURL}/files/${stored.get('passwd')}/content`, { headers: { authorization: `Bearer ${cairn.key}` } });
    assert.equal(download.status, 200);
    assert.equal(download.headers.get('content-disposition'), 'attachment; filename=passwd');
    await download.arrayBuffer();

    // Bytes live only as the files' own blobs under the data dir; nothing appeared beside it.
    assert.deepEqual(await readdir(parent), besideDataDir);
    for (const file of await filesUnder(dataDir)) {
      assert.match(file, /^blobs\/files\/[0-9a-f]{2}\/[0-9a-f-]{36}$/, `unexpected file ${file}`);
    }
  });

  it('fails a ZIP-bomb DOCX with last_error, from its declared size or its lie, in bounded time and memory', async () => {
    const honest = await ingest(bomb, 'bomb.docx');
    assert.equal(honest.file.status, 'failed');
    assert.equal(honest.file.last_error?.code, 'invalid_file');
    assert.match(honest.file.last_error!.message, /^The DOCX expands to 300 MB of XML, over the 50 MB limit/);
    assert.ok(honest.elapsedMs < 15_000, `took ${honest.elapsedMs} ms`);
    assert.ok(honest.growthMb < 300, `RSS grew by ${honest.growthMb} MB`);

    // Declares 4 KB but holds 300 MB: inflation stops one byte past the declared size.
    const liar = await ingest(makeDocx({ ...bombMain, declaredSize: 4096 }), 'liar.docx');
    assert.equal(liar.file.status, 'failed');
    assert.equal(liar.file.last_error?.code, 'invalid_file');
    assert.match(liar.file.last_error!.message, /word\/document\.xml declares 4096 bytes but holds more/);
    assert.ok(liar.elapsedMs < 15_000, `took ${liar.elapsedMs} ms`);
    assert.ok(liar.growthMb < 300, `RSS grew by ${liar.growthMb} MB`);

    await assertGoodFileIntact();
  });

  it('fails a 10,000-page PDF over the page cap with last_error, before parsing every page', async () => {
    const { file, elapsedMs, growthMb } = await ingest(longPdf, 'ten-thousand-pages.pdf');
    assert.equal(file.status, 'failed');
    assert.equal(file.last_error?.code, 'invalid_file');
    assert.equal(file.last_error!.message, 'The PDF has 10000 pages; Cairn ingests at most 5000 pages per file');
    assert.ok(elapsedMs < 30_000, `took ${elapsedMs} ms`);
    assert.ok(growthMb < 300, `RSS grew by ${growthMb} MB`);
    await assertGoodFileIntact();
  });

  it('ingests HTML with 100,000 nested tags without a stack overflow, in bounded time', async () => {
    const depth = 100_000;
    const html = `<!doctype html><html><body>${'<div>'.repeat(depth)}${'<b><i>'.repeat(depth / 2)}<p>The zeppelin hangar at Ahlhorn burned in January 1918.</p>${'</div>'.repeat(depth)}</body></html>`;
    const { file, elapsedMs, growthMb } = await ingest(Buffer.from(html), 'nested.html');
    assert.equal(file.status, 'completed', JSON.stringify(file.last_error));
    assert.ok(elapsedMs < 20_000, `took ${elapsedMs} ms`);
    assert.ok(growthMb < 300, `RSS grew by ${growthMb} MB`);
    const hits = await client.vectorStores.search(kbId, { query: 'when did the zeppelin hangar burn' });
    assert.equal(hits.data[0]?.file_id, file.id);
    await assertGoodFileIntact();
  });

  it('leaves the knowledge base intact: the good files completed, each hostile one failed, nothing staged', async () => {
    const kb = await client.vectorStores.retrieve(kbId);
    assert.deepEqual(kb.file_counts, { in_progress: 0, completed: 2, failed: 3, cancelled: 0, total: 5 });
    const failed = await client.vectorStores.files.list(kbId, { filter: 'failed' });
    assert.ok(failed.data.every((file) => file.last_error?.code === 'invalid_file' && file.last_error.message.length > 0));
    assert.deepEqual(await filesUnder(stagingDir()), []);
    await assertGoodFileIntact();
  });
});
