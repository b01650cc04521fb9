/** Runs the HTTP server and stops it gracefully: stop accepting, let requests and streams finish, close pools. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './app.ts';
import { clientErrorAnswerer } from './http/client-error.ts';
import type { Services } from './services.ts';

export interface RunningServer {
  server: Server;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  /** Stops accepting, waits for in-flight requests up to the deadline, then closes everything. */
  stop(): Promise<void>;
}

export async function startServer(services: Services, port = services.config.port, host = services.config.host): Promise<RunningServer> {
  const app = createApp(services);
  let stopping = false;
  const { headersTimeoutMs, requestTimeoutMs } = services.config;
  const options = {
    // Slow clients (slow-loris): Node answers 408 and closes a connection whose headers, or whole request,
    // take longer than these. Node checks them only every `connectionsCheckingInterval` (30 s by default),
    // so check at a tenth of the headers timeout (at most every 5 s) to keep the bound close to the setting.
    headersTimeout: headersTimeoutMs,
    requestTimeout: requestTimeoutMs,
    connectionsCheckingInterval: Math.min(5_000, Math.max(50, Math.floor(headersTimeoutMs / 10))),
  };
  const server = createServer(options, (req, res) => {
    // During shutdown, answer what is already here but tell keep-alive clients to reconnect elsewhere.
    if (stopping) res.setHeader('connection', 'close');
    app(req, res);
  });
  // Requests the HTTP parser refuses (a 100 KB URL, oversized headers, timeouts) get an error envelope, not a reset.
  server.on('clientError', clientErrorAnswerer());
  server.keepAliveTimeout = 65_000; // longer than common load balancers' idle timeout
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      stopping = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = new Promise<'deadline'>((resolve) => setTimeout(resolve, services.config.shutdownTimeoutMs, 'deadline').unref());
      if ((await Promise.race([closed, deadline])) === 'deadline') {
        services.logger.warn('shutdown deadline reached; closing the remaining connections');
        server.closeAllConnections();
        await closed;
      }
      await services.close();
    })();
    return stopped;
  };
  return { server, url, stop };
}
