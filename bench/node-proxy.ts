/**
 * Child process of bench/gateway.ts: the least a Node gateway can do — node:http in, one undici
 * Pool out, bodies passed through untouched (streams chunk by chunk), no auth, no parsing, no
 * logging. Its row in the table is the floor that any Node gateway, Cairn included, pays for the
 * extra hop on this machine. Prints `{"url":…}` on stdout once listening.
 *
 * Environment: BENCH_STUB_URL, the stub's base URL (http://127.0.0.1:<port>/v1).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const stubUrl = process.env.BENCH_STUB_URL;
if (!stubUrl) throw new Error('BENCH_STUB_URL is required');
const upstream = new URL(stubUrl);
const pool = new Pool(upstream.origin, { pipelining: 1, keepAliveTimeout: 60_000 });

const server = createServer({ noDelay: true }, (req, res) => {
  void (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const answer = await pool.request({
      method: 'POST',
      path: `${upstream.pathname}${(req.url ?? '/').replace(/^\/v1/, '')}`,
      headers: { 'content-type': 'application/json' },
      body: Buffer.concat(chunks),
    });
    res.writeHead(answer.statusCode, { 'content-type': String(answer.headers['content-type'] ?? 'application/json') });
    for await (const chunk of answer.body) res.write(chunk);
    res.end();
  })().catch(() => res.destroy());
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
});

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  server.closeAllConnections();
  server.close(() => process.exit(0));
  void pool.close();
};
process.on('SIGTERM', stop); // on, not once: a second signal must not kill us mid-cleanup
process.on('SIGINT', stop);
process.stdin.on('end', stop).resume(); // the parent holds our stdin: EOF means it is gone
