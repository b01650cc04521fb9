/** Projects and their API keys. Keys are stored as SHA-256 hashes; the plain key exists only in `create`'s result. */
import { createHash, randomBytes } from 'node:crypto';
import { newId } from '../ids.ts';
import type { Database } from './database.ts';

export const KEY_PREFIX = 'sk-cairn-';

export interface Project {
  id: string;
  name: string;
}

export interface ApiKeyInfo {
  id: string;
  projectId: string;
  projectName: string;
  name: string | null;
  redacted: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/** Who is calling: resolved from the bearer token on every request. */
export interface Caller {
  keyId: string;
  projectId: string;
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

interface KeyRow {
  id: string;
  project_id: string;
  project_name: string;
  name: string | null;
  redacted: string;
  created_at: Date | string;
  revoked_at: Date | string | null;
}

function toInfo(row: KeyRow): ApiKeyInfo {
  return {
    id: row.id,
    projectId: row.project_id,
    projectName: row.project_name,
    name: row.name,
    redacted: row.redacted,
    createdAt: new Date(row.created_at),
    revokedAt: row.revoked_at ? new Date(row.revoked_at) : null,
  };
}

const MAX_CACHED_KEYS = 10_000;

export class ApiKeyStore {
  /** Positive lookups by key hash. Only this process's revocations clear it; others expire with the TTL. */
  private readonly cache = new Map<string, { caller: Caller; expiresAt: number }>();

  /** `cacheTtlMs` 0 disables caching (admin commands); the API server caches to keep a query off every request. */
  constructor(
    private readonly db: Database,
    private readonly cacheTtlMs = 0,
  ) {}

  /** Creates the project if it does not exist yet. */
  async ensureProject(name: string): Promise<Project> {
    const rows = await this.db.query<Project>(
      `INSERT INTO projects (id, name) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
       RETURNING id, name`,
      [newId('proj_'), name],
    );
    return rows[0]!;
  }

  async create(projectName: string, keyName?: string): Promise<{ key: string; info: ApiKeyInfo }> {
    const project = await this.ensureProject(projectName);
    const key = `${KEY_PREFIX}${randomBytes(24).toString('base64url')}`;
    const redacted = `${key.slice(0, KEY_PREFIX.length + 4)}…${key.slice(-4)}`;
    const id = newId('key_');
    const rows = await this.db.query<KeyRow>(
      `INSERT INTO api_keys (id, project_id, name, key_hash, redacted) VALUES ($1, $2, $3, $4, $5)
       RETURNING id, project_id, $6::text AS project_name, name, redacted, created_at, revoked_at`,
      [id, project.id, keyName ?? null, hashKey(key), redacted, project.name],
    );
    return { key, info: toInfo(rows[0]!) };
  }

  async list(projectName?: string): Promise<ApiKeyInfo[]> {
    const rows = await this.db.query<KeyRow>(
      `SELECT k.id, k.project_id, p.name AS project_name, k.name, k.redacted, k.created_at, k.revoked_at
       FROM api_keys k JOIN projects p ON p.id = k.project_id
       WHERE $1::text IS NULL OR p.name = $1
       ORDER BY k.created_at, k.id`,
      [projectName ?? null],
    );
    return rows.map(toInfo);
  }

  /** Returns false when no active key has that id. */
  async revoke(keyId: string): Promise<boolean> {
    for (const [hash, entry] of this.cache) if (entry.caller.keyId === keyId) this.cache.delete(hash);
    const rows = await this.db.query(
      'UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id',
      [keyId],
    );
    return rows.length > 0;
  }

  async countActive(): Promise<number> {
    const rows = await this.db.query<{ count: number }>('SELECT count(*)::int AS count FROM api_keys WHERE revoked_at IS NULL');
    return rows[0]?.count ?? 0;
  }

  async authenticate(key: string): Promise<Caller | undefined> {
    if (!key.startsWith(KEY_PREFIX)) return undefined;
    const hash = hashKey(key);
    const cached = this.cache.get(hash);
    if (cached && cached.expiresAt > Date.now()) return cached.caller;
    const rows = await this.db.query<{ id: string; project_id: string }>(
      'SELECT id, project_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL',
      [hash],
    );
    const row = rows[0];
    if (!row) {
      this.cache.delete(hash);
      return undefined;
    }
    const caller = { keyId: row.id, projectId: row.project_id };
    if (this.cacheTtlMs > 0) {
      if (this.cache.size >= MAX_CACHED_KEYS) this.cache.clear();
      this.cache.set(hash, { caller, expiresAt: Date.now() + this.cacheTtlMs });
    }
    return caller;
  }
}
