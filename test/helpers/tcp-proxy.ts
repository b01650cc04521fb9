/**
 * A TCP proxy on loopback that a test can cut and restore, to take a dependency (Postgres, Redis,
 * Qdrant) away from Cairn for real without stopping the machine's shared server.
 *
 *   const proxy = await TcpProxy.start(5432);      // proxy.port forwards to 127.0.0.1:5432
 *   await proxy.cut();                             // every connection destroyed, new ones refused
 *   await proxy.restore();                         // listening again on the same port
 *   proxy.retarget(otherPort);                     // later connections go elsewhere (a restarted server)
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;

  private constructor(
    private listenPort: number,
    private targetPort: number,
    private readonly targetHost: string,
  ) {}

  /** Listens on a free loopback port, or on `port` when given. */
  static async start(targetPort: number, options: { targetHost?: string; port?: number } = {}): Promise<TcpProxy> {
    const proxy = new TcpProxy(options.port ?? 0, targetPort, options.targetHost ?? '127.0.0.1');
    await proxy.listen();
    return proxy;
  }

  /** The port Cairn connects to; it stays the same across cut() and restore(). */
  get port(): number {
    return this.listenPort;
  }

  /** Connections open through the proxy right now (client side). */
  get connections(): number {
    return this.sockets.size;
  }

  /** Sends later connections to another port (a server restarted elsewhere). */
  retarget(targetPort: number): void {
    this.targetPort = targetPort;
  }

  /** Stops listening (new connections are refused) and destroys every open connection. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await closed;
  }

  /** Listens again on the same port. */
  async restore(): Promise<void> {
    if (this.server) return;
    await this.listen();
  }

  async close(): Promise<void> {
    await this.cut();
  }

  private listen(): Promise<void> {
    const server = net.createServer((client) => this.pipe(client));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, '127.0.0.1', () => {
        server.off('error', reject);
        this.server = server;
        this.listenPort = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private pipe(client: Socket): void {
    const upstream = net.connect(this.targetPort, this.targetHost);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('error', () => undefined);
      socket.once('close', () => {
        this.sockets.delete(socket);
        // One side gone: the other goes too, as when a server process dies.
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
