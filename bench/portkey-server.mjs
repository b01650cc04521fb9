/**
 * Child process of bench/gateway.ts: the Portkey AI gateway (@portkey-ai/gateway, its published
 * Node build) on loopback. The build is a script with no exports that calls @hono/node-server's
 * `serve({ fetch, port })` without a hostname, i.e. on every interface; a resolve hook
 * (portkey-hooks.mjs) hands it portkey-node-server.mjs instead, whose `serve` binds 127.0.0.1
 * and prints `{"url":…}` on stdout. Plain node, no tsx: Portkey runs the way `npm run start:node` does.
 */
import { register } from 'node:module';
import process from 'node:process';

register('./portkey-hooks.mjs', import.meta.url);
// start-server.js reads its flags from process.argv: no UI routes, any free port (0).
process.argv.push('--headless', '--port=0');
process.stdin.on('end', () => process.exit(0)).resume(); // the parent holds our stdin: EOF means it is gone
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
await import(new URL('../node_modules/@portkey-ai/gateway/build/start-server.js', import.meta.url).href);
