/**
 * @hono/node-server as Portkey's build sees it in the benchmark (see portkey-server.mjs): the real
 * module, except that `serve` listens on 127.0.0.1 only and announces its URL on stdout as JSON.
 */
import process from 'node:process';
import * as real from '@hono/node-server';

export * from '@hono/node-server';

export function serve(options, listeningListener) {
  return real.serve({ ...options, hostname: '127.0.0.1' }, (info) => {
    process.stdout.write(`\n${JSON.stringify({ url: `http://127.0.0.1:${info.port}` })}\n`);
    listeningListener?.(info);
  });
}
