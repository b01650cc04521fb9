/**
 * A small OpenAI-compatible server that behaves like vLLM, for end-to-end tests and benchmarks
 * in place of a GPU model server. node:http only, so it is cheap enough to serve as the
 * "direct" baseline of the gateway benchmark.
 *
 *   const up = await StubUpstream.start({ name: 'alpha' });   // up.url === 'http://127.0.0.1:<port>/v1'
 *   up.plan({ status: 429, headers: { 'retry-after': '1' } }, { stall: 'mid-stream' });
 *   ...
 *   await up.close();
 *
 * Behaviours (plan/setDefault) apply to POST endpoints; each POST that passes the API-key check
 * takes the next planned behaviour, then the default. Order of effects: delayMs, reset/stall
 * 'before-headers', status, then a normal reply (cut short by reset/stall 'mid-stream').
 */
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type Generation, type Kind, completionBody, countInputTokens, countMessageTokens, embeddingsBody,
  isObject, lowerCaseKeys, modelList, newId, now, readBody, replyPieces, sendJson, STUB_MODEL_ID, streamEvents,
  usage, vllmError,
} from './stub-upstream-payloads.ts';

export interface StubBehaviour {
  /** Reply with this HTTP status and an error body. */
  status?: number;
  /** Body sent with `status`; a string is sent verbatim as text/plain. Default: vLLM's error shape. */
  errorBody?: unknown;
  /** Extra response headers, e.g. {'retry-after': '1'}. */
  headers?: Record<string, string>;
  /** Destroy the socket before sending headers, or after the first chunk/part of the body. */
  reset?: 'before-headers' | 'mid-stream';
  /** Never answer, or stop after the first chunk; held until the client gives up or close(). */
  stall?: 'before-headers' | 'mid-stream';
  /** Wait this long before answering. */
  delayMs?: number;
  /** Assistant text to return. */
  content?: string;
  /** Chat only: answer with these tool calls (no text, finish_reason 'tool_calls'), as vLLM does. */
  toolCalls?: Array<{ name: string; arguments: string }>;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON; the raw text if it was not JSON; null when empty; undefined if the client left mid-body. */
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** True when the client connection closed before the response completed. */
  aborted: boolean;
}

export interface StubOptions {
  /** Used in the default content "This is the stub answer from <name>." (default `stub-<port>`). */
  name?: string;
  content?: string;
  /** Delay between SSE chunks (default 0). */
  chunkDelayMs?: number;
  /** When set, /v1 requests need `authorization: Bearer <apiKey>`. */
  apiKey?: string;
}

/** One request being answered. `killed` marks sockets the stub destroyed itself (not client aborts). */
interface Exchange { req: IncomingMessage; res: ServerResponse; killed: boolean }

type Route = Kind | 'embeddings';
const ROUTES: Record<string, Route> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completion',
  '/v1/embeddings': 'embeddings',
};
const DEFAULT_TIMEOUT_MS = 5_000;

export class StubUpstream {
  readonly url: string;
  readonly name: string;
  readonly requests: ReceivedRequest[] = [];
  private queue: StubBehaviour[] = [];
  private fallback: StubBehaviour = {};
  /** Aborted requests not yet handed out by waitForAbort(). */
  private readonly aborts: ReceivedRequest[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private active = 0;
  private closed = false;

  static async start(options: StubOptions = {}): Promise<StubUpstream> {
    const server = http.createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new StubUpstream(server, options);
  }

  private constructor(private readonly server: Server, private readonly options: StubOptions) {
    const { port } = server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}/v1`;
    this.name = options.name ?? `stub-${port}`;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.handle({ req, res, killed: false }).catch(() => res.destroy());
    });
  }

  /** The next N POST requests follow these behaviours, one each; then the default resumes. */
  plan(...behaviours: StubBehaviour[]): void {
    this.queue.push(...behaviours);
  }

  setDefault(behaviour: StubBehaviour): void {
    this.fallback = behaviour;
  }

  /** Resolves with the next request whose client left before its response completed. */
  waitForAbort(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ReceivedRequest> {
    return this.waitFor('a client abort', timeoutMs, () => this.aborts.shift());
  }

  async waitForRequests(n: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    await this.waitFor(`${n} request(s)`, timeoutMs, () => (this.requests.length >= n ? true : undefined));
  }

  /** Requests whose response has not finished (or been abandoned) yet. */
  inFlight(): number {
    return this.active;
  }

  reset(): void {
    this.requests.length = 0;
    this.aborts.length = 0;
    this.queue = [];
    this.fallback = {};
  }

  /** Stops listening and destroys every connection, including stalled ones. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t); // pending delays never resume
    this.timers.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(x: Exchange): Promise<void> {
    const { req, res } = x;
    this.active++;
    const record: ReceivedRequest = {
      method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: undefined, aborted: false,
    };
    let recorded = false;
    const recordOnce = (): void => {
      if (recorded) return;
      recorded = true;
      this.requests.push(record);
      this.notify();
    };
    res.on('close', () => {
      this.active--;
      if (!res.writableFinished && !x.killed && !this.closed) {
        record.aborted = true;
        this.aborts.push(record);
      }
      recordOnce();
      this.notify();
    });

    let text: string;
    try {
      text = await readBody(req);
    } catch {
      return; // client left mid-body; the 'close' handler records it
    }
    let malformed = false;
    try {
      record.body = text === '' ? null : JSON.parse(text);
    } catch {
      record.body = text;
      malformed = true;
    }
    recordOnce();

    const path = record.path.split('?')[0] ?? '/';
    const { apiKey } = this.options;
    if (apiKey && path.startsWith('/v1/') && req.headers.authorization !== `Bearer ${apiKey}`) {
      const error = { message: 'Unauthorized', type: 'invalid_request_error', param: null, code: 401 };
      return sendJson(res, 401, { error });
    }
    if (req.method === 'GET' && path === '/v1/models') return sendJson(res, 200, modelList());
    if (req.method === 'GET' && path === '/health') return sendJson(res, 200, '');
    const route = ROUTES[path];
    if (!route) return sendJson(res, 404, { detail: 'Not Found' });
    if (req.method !== 'POST') return sendJson(res, 405, { detail: 'Method Not Allowed' });

    const behaviour = this.queue.shift() ?? this.fallback;
    await this.respond(x, route, behaviour, malformed ? undefined : record.body);
  }

  private async respond(x: Exchange, route: Route, b: StubBehaviour, body: unknown): Promise<void> {
    if (b.delayMs) await this.sleep(b.delayMs);
    if (x.res.destroyed) return;
    const headers = lowerCaseKeys(b.headers);
    if (b.reset === 'before-headers') return this.kill(x);
    if (b.stall === 'before-headers') return; // held open until the client gives up or close()
    if (b.status !== undefined) return sendJson(x.res, b.status, b.errorBody ?? vllmError(b.status, `Stub error ${b.status}`), headers);
    if (!isObject(body)) return sendJson(x.res, 400, vllmError(400, 'Malformed JSON request body'), headers);
    if (route === 'embeddings') return this.sendBody(x, b, headers, JSON.stringify(embeddingsBody(body)));

    if (route === 'chat' && !Array.isArray(body.messages)) {
      return sendJson(x.res, 400, vllmError(400, "Field required: 'messages'"), headers);
    }
    const prompt = route === 'chat' ? countMessageTokens(body.messages) : countInputTokens(body.prompt);
    const content = b.content ?? this.fallback.content ?? this.options.content ?? `This is the stub answer from ${this.name}.`;
    const { pieces, finish } = replyPieces(content, body);
    const streamOptions = isObject(body.stream_options) ? body.stream_options : {};
    const g: Generation = {
      kind: route,
      id: newId(route === 'chat' ? 'chatcmpl' : 'cmpl'),
      created: now(),
      model: typeof body.model === 'string' ? body.model : STUB_MODEL_ID,
      pieces,
      finish,
      usage: usage(prompt, pieces.length),
      includeUsage: streamOptions.include_usage === true,
      ...(route === 'chat' && b.toolCalls ? { toolCalls: b.toolCalls } : {}),
    };
    if (body.stream === true) return this.stream(x, b, headers, streamEvents(g));
    return this.sendBody(x, b, headers, JSON.stringify(completionBody(g)));
  }

  /** A JSON 200; with a mid-stream behaviour only the first half of it is sent (chunked). */
  private sendBody(x: Exchange, b: StubBehaviour, headers: Record<string, string>, text: string): void {
    if (b.reset !== 'mid-stream' && b.stall !== 'mid-stream') return sendJson(x.res, 200, text, { 'content-type': 'application/json', ...headers });
    x.res.writeHead(200, { 'content-type': 'application/json', ...headers });
    this.firstPiece(x, b, text.slice(0, Math.ceil(text.length / 2)));
  }

  private async stream(x: Exchange, b: StubBehaviour, headers: Record<string, string>, events: string[]): Promise<void> {
    const { res } = x;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', ...headers });
    if (this.firstPiece(x, b, events[0]!)) return;
    const delay = this.options.chunkDelayMs ?? 0;
    for (const event of events.slice(1)) {
      if (delay > 0) await this.sleep(delay);
      if (res.destroyed) return;
      res.write(event); // one write per chunk, so each goes out as its own chunk
    }
    res.end();
  }

  /** Writes the first piece; returns true when a mid-stream reset/stall takes over from there. */
  private firstPiece(x: Exchange, b: StubBehaviour, piece: string): boolean {
    const reset = b.reset === 'mid-stream';
    x.res.write(piece, () => {
      if (reset) this.kill(x); // after the piece reached the socket, so the client sees it first
    });
    return reset || b.stall === 'mid-stream';
  }

  private kill(x: Exchange): void {
    x.killed = true;
    x.req.socket.destroy();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(void this.timers.delete(t)), ms);
      this.timers.add(t);
    });
  }

  private waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined): Promise<T> {
    const ready = check();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      const waiter = (): void => {
        const value = check();
        if (value === undefined) return;
        cleanup();
        resolve(value);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name}: timed out after ${timeoutMs}ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
