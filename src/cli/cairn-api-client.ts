/**
 * The few calls `cairn ingest` makes to a running Cairn's HTTP API (the one SDK users call), with
 * failures turned into one-line CliErrors that say what to do.
 */
import { openAsBlob } from 'node:fs';
import { CliError } from './cli-error.ts';

export interface KbObject {
  id: string;
  name: string;
  file_counts: { in_progress: number; completed: number; failed: number; cancelled: number; total: number };
  chunk_count: number;
}

export interface KbFileObject {
  id: string;
  status: 'in_progress' | 'completed' | 'failed' | 'cancelled';
  attributes: Record<string, string | number | boolean> | null;
}

interface Page<T> {
  data: T[];
  has_more: boolean;
  last_id: string | null;
}

/** An error answer of the API, as opposed to not reaching it at all. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export class CairnApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  async request<T>(method: string, route: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${route}`, {
        method,
        headers: { authorization: `Bearer ${this.apiKey}`, ...(body instanceof FormData || body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body instanceof FormData ? body : body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      const code = (error as { cause?: { code?: string } }).cause?.code;
      throw new CliError(
        `cannot reach Cairn at ${this.baseUrl}${code ? ` (${code})` : ''}: is the server running (\`npm start\`)? Otherwise point --base-url or CAIRN_BASE_URL at it`,
        1,
        { cause: error },
      );
    }
    const payload = (await response.json().catch(() => ({}))) as T & { error?: { message: string } };
    if (response.status === 401) {
      throw new CliError(`Cairn at ${this.baseUrl} refused the API key: pass --api-key or set CAIRN_API_KEY to a key from \`cairn keys create\``);
    }
    if (!response.ok) throw new ApiError(`${method} ${route} → ${response.status}: ${payload.error?.message ?? 'unknown error'}`, response.status);
    return payload;
  }

  /** Every item of a paginated list. */
  async listAll<T extends { id: string }>(route: string): Promise<T[]> {
    const items: T[] = [];
    let after: string | undefined;
    for (;;) {
      const separator = route.includes('?') ? '&' : '?';
      const page = await this.request<Page<T>>('GET', `${route}${separator}limit=100${after ? `&after=${after}` : ''}`);
      items.push(...page.data);
      if (!page.has_more || !page.last_id) return items;
      after = page.last_id;
    }
  }

  async findKnowledgeBase(idOrName: string): Promise<KbObject | undefined> {
    return (await this.listAll<KbObject>('/knowledge_bases')).find((kb) => kb.id === idOrName || kb.name === idOrName);
  }

  async upload(file: string, filename: string): Promise<string> {
    const form = new FormData();
    form.set('purpose', 'knowledge_base');
    form.set('file', await openAsBlob(file), filename);
    return (await this.request<{ id: string }>('POST', '/files', form)).id;
  }

  /** Detaches a file from the knowledge base and deletes the file object `cairn ingest` uploaded for it. */
  async remove(kbId: string, fileId: string): Promise<void> {
    await this.request('DELETE', `/knowledge_bases/${kbId}/files/${fileId}`).catch(ignoreNotFound);
    await this.request('DELETE', `/files/${fileId}`).catch(ignoreNotFound);
  }
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof ApiError && error.status === 404)) throw error;
}
