/**
 * Child process of bench/gateway.ts: the stub upstream (test/helpers/stub-upstream.ts) on loopback,
 * in a process of its own so that its CPU is not the load generator's. Prints `{"url":…}` on
 * stdout once listening; stops on SIGTERM/SIGINT or when the parent goes away.
 */
import { StubUpstream } from '../test/helpers/stub-upstream.ts';

const stub = await StubUpstream.start({ name: 'bench' });
// The stub keeps every request it receives (headers and parsed body): forget them regularly.
const trim = setInterval(() => stub.reset(), 250);

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  clearInterval(trim);
  void stub.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop); // on, not once: a second signal must not kill us mid-cleanup
process.on('SIGINT', stop);
process.stdin.on('end', stop).resume(); // the parent holds our stdin: EOF means it is gone

process.stdout.write(`${JSON.stringify({ url: stub.url })}\n`);
