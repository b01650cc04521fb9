/** Projects and their API keys. Keys are stored as SHA-256 hashes; the plain key exists only in `create`'s result. */
import { createHash, randomBytes } from 'node:crypto';
import { newId } from '../ids.ts';
import type { Limits } from '../limits/rate-limiter.ts';
import type { Database, Queryable } from './database.ts';

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
  /** The key's own limits (undefined: it inherits the project's). */
  limits: Limits;
}

/** Who is calling: resolved from the bearer token on every request. */
export interface Caller {
  keyId: string;
  projectId: string;
  /** The key's limits, else its project's; unset ones fall back to the server defaults. */
  limits?: Limits;
}

/** A change of limits: a number sets it, null clears it (back to inheriting), undefined leaves it. */
export interface LimitsUpdate {
  rpm?: number | null;
  tpm?: number | null;
}

export interface ProjectLimitsUpdate extends LimitsUpdate {
  storageQuotaBytes?: number | null;
}

function limitsOf(rpm: number | null, tpm: number | null): Limits {
  return { ...(rpm === null ? {} : { rpm }), ...(tpm === null ? {} : { tpm }) };
}

/** SQL `SET` items for the given update, numbering parameters from `first`. */
function assignments(columns: Record<string, number | null | undefined>, first: number): { sql: string[]; params: unknown[] } {
  const sql: string[] = [];
  const params: unknown[] = [];
  for (const [column, value] of Object.entries(columns)) {
    if (value === undefined) continue;
    params.push(value);
    sql.push(`${column} = $${first + params.length - 1}`);
  }
  return { sql, params };
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
  rpm_limit: number | null;
  tpm_limit: number | null;
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
    limits: limitsOf(row.rpm_limit, row.tpm_limit),
  };
}

const KEY_COLUMNS = 'k.id, k.project_id, p.name AS project_name, k.name, k.redacted, k.created_at, k.revoked_at, k.rpm_limit, k.tpm_limit';

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
  async ensureProject(name: string, db: Queryable = this.db): Promise<Project> {
    const rows = await db.query<Project>(
      `INSERT INTO projects (id, name) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
       RETURNING id, name`,
      [newId('proj_'), name],
    );
    return rows[0]!;
  }

  async create(projectName: string, keyName?: string, limits: Limits = {}, db: Queryable = this.db): Promise<{ key: string; info: ApiKeyInfo }> {
    const project = await this.ensureProject(projectName, db);
    const key = `${KEY_PREFIX}${randomBytes(24).toString('base64url')}`;
    const redacted = `${key.slice(0, KEY_PREFIX.length + 4)}…${key.slice(-4)}`;
    const id = newId('key_');
    const rows = await db.query<KeyRow>(
      `INSERT INTO api_keys (id, project_id, name, key_hash, redacted, rpm_limit, tpm_limit) VALUES ($1, $2, $3, $4, $5, $7, $8)
       RETURNING id, project_id, $6::text AS project_name, name, redacted, created_at, revoked_at, rpm_limit, tpm_limit`,
      [id, project.id, keyName ?? null, hashKey(key), redacted, project.name, limits.rpm ?? null, limits.tpm ?? null],
    );
    return { key, info: toInfo(rows[0]!) };
  }

  /**
   * Creates a key when no active one exists (a first start, or every key revoked), so a newcomer
   * always gets one. API replicas starting together serialise on an advisory lock: one key, not one each.
   */
  async createFirstKey(projectName: string, keyName: string): Promise<string | undefined> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(7261758)');
      const [active] = await tx.query<{ count: number }>('SELECT count(*)::int AS count FROM api_keys WHERE revoked_at IS NULL');
      if ((active?.count ?? 0) > 0) return undefined;
      return (await this.create(projectName, keyName, {}, tx)).key;
    });
  }

  /** Returns false when no key has that id. Takes effect within the auth cache TTL on other processes. */
  async setKeyLimits(keyId: string, update: LimitsUpdate): Promise<boolean> {
    this.forget(keyId);
    const { sql, params } = assignments({ rpm_limit: update.rpm, tpm_limit: update.tpm }, 2);
    if (sql.length === 0) return (await this.db.query('SELECT 1 FROM api_keys WHERE id = $1', [keyId])).length > 0;
    const rows = await this.db.query(`UPDATE api_keys SET ${sql.join(', ')} WHERE id = $1 RETURNING id`, [keyId, ...params]);
    return rows.length > 0;
  }

  /** Creates the project if it does not exist yet. */
  async setProjectLimits(projectName: string, update: ProjectLimitsUpdate): Promise<Project> {
    const project = await this.ensureProject(projectName);
    this.cache.clear();
    const { sql, params } = assignments(
      { rpm_limit: update.rpm, tpm_limit: update.tpm, storage_quota_bytes: update.storageQuotaBytes },
      2,
    );
    if (sql.length > 0) await this.db.query(`UPDATE projects SET ${sql.join(', ')} WHERE id = $1`, [project.id, ...params]);
    return project;
  }

  async list(projectName?: string): Promise<ApiKeyInfo[]> {
    const rows = await this.db.query<KeyRow>(
      `SELECT ${KEY_COLUMNS}
       FROM api_keys k JOIN projects p ON p.id = k.project_id
       WHERE $1::text IS NULL OR p.name = $1
       ORDER BY k.created_at, k.id`,
      [projectName ?? null],
    );
    return rows.map(toInfo);
  }

  /** Returns false when no active key has that id. */
  async revoke(keyId: string): Promise<boolean> {
    this.forget(keyId);
    const rows = await this.db.query(
      'UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id',
      [keyId],
    );
    return rows.length > 0;
  }

  async authenticate(key: string): Promise<Caller | undefined> {
    if (!key.startsWith(KEY_PREFIX)) return undefined;
    const hash = hashKey(key);
    const cached = this.cache.get(hash);
    if (cached && cached.expiresAt > Date.now()) return cached.caller;
    const rows = await this.db.query<{ id: string; project_id: string; rpm: number | null; tpm: number | null }>(
      `SELECT k.id, k.project_id, coalesce(k.rpm_limit, p.rpm_limit) AS rpm, coalesce(k.tpm_limit, p.tpm_limit) AS tpm
       FROM api_keys k JOIN projects p ON p.id = k.project_id
       WHERE k.key_hash = $1 AND k.revoked_at IS NULL`,
      [hash],
    );
    const row = rows[0];
    if (!row) {
      this.cache.delete(hash);
      return undefined;
    }
    const caller: Caller = { keyId: row.id, projectId: row.project_id, limits: limitsOf(row.rpm, row.tpm) };
    if (this.cacheTtlMs > 0) {
      if (this.cache.size >= MAX_CACHED_KEYS) this.cache.clear();
      this.cache.set(hash, { caller, expiresAt: Date.now() + this.cacheTtlMs });
    }
    return caller;
  }

  private forget(keyId: string): void {
    for (const [hash, entry] of this.cache) if (entry.caller.keyId === keyId) this.cache.delete(hash);
  }
}
