/** The files table: uploaded files of a project. */
import { newId } from '../ids.ts';
import type { Database } from './database.ts';
import { cursorLookup, keyset, rememberDeletedCursors, toPage, unknownCursor, type Page, type PageRequest } from './pagination.ts';

export interface StoredFile {
  id: string;
  projectId: string;
  filename: string;
  purpose: string;
  bytes: number;
  sha256: string;
  /** Where the bytes are in the blob store: the file's own key, or a shared `sha256/…` key for files stored before migration 005. */
  blobKey: string;
  createdAt: Date;
  /** `expires_after: {anchor: 'created_at', seconds}`; null: kept until deleted. */
  expiresAt: Date | null;
}

interface FileRow {
  id: string;
  project_id: string;
  filename: string;
  purpose: string;
  bytes: string | number;
  sha256: string;
  blob_key: string;
  created_at: Date | string;
  expires_at: Date | string | null;
}

const COLUMNS = 'id, project_id, filename, purpose, bytes, sha256, blob_key, created_at, expires_at';
/** SQL: the file is not expired at the time in `now` (an expired file answers nowhere, as OpenAI's; the sweeper deletes it). */
const LIVE = (now: string) => `(expires_at IS NULL OR expires_at > ${now})`;
/** The files list of the project in $1. */
const FILE_CURSORS = "'files:' || $1";

function toFile(row: FileRow): StoredFile {
  return {
    id: row.id,
    projectId: row.project_id,
    filename: row.filename,
    purpose: row.purpose,
    bytes: Number(row.bytes),
    sha256: row.sha256,
    blobKey: row.blob_key,
    createdAt: new Date(row.created_at),
    expiresAt: row.expires_at === null ? null : new Date(row.expires_at),
  };
}

export class FileStore {
  constructor(
    private readonly db: Database,
    /** Expiry is judged by this clock (tests move it), not by the database's. */
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /**
   * Inserts the file unless it would take the project over its storage quota (the project's
   * own, else `defaultQuotaBytes`). The project row is locked for the check, so concurrent
   * uploads cannot overshoot the quota together.
   */
  async create(
    file: Omit<StoredFile, 'id' | 'createdAt' | 'expiresAt'> & { expiresAfterSeconds?: number },
    defaultQuotaBytes?: number,
  ): Promise<{ file: StoredFile } | { quotaBytes: number; usedBytes: number }> {
    return this.db.transaction(async (tx) => {
      const [quota] = await tx.query<{ quota: string | number | null }>(
        // NO KEY UPDATE: serialises uploads of the project without blocking inserts that reference it (usage, knowledge bases).
        'SELECT coalesce(storage_quota_bytes, $2) AS quota FROM projects WHERE id = $1 FOR NO KEY UPDATE',
        [file.projectId, defaultQuotaBytes ?? null],
      );
      if (quota?.quota !== null && quota?.quota !== undefined) {
        const [used] = await tx.query<{ bytes: string | number }>('SELECT coalesce(sum(bytes), 0) AS bytes FROM files WHERE project_id = $1', [
          file.projectId,
        ]);
        const usedBytes = Number(used?.bytes ?? 0);
        if (usedBytes + file.bytes > Number(quota.quota)) return { quotaBytes: Number(quota.quota), usedBytes };
      }
      const rows = await tx.query<FileRow>(
        `INSERT INTO files (id, project_id, filename, purpose, bytes, sha256, blob_key, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${COLUMNS}`,
        [newId('file-', 24), file.projectId, file.filename, file.purpose, file.bytes, file.sha256, file.blobKey, this.clock(),
          file.expiresAfterSeconds === undefined ? null : new Date(this.clock().getTime() + file.expiresAfterSeconds * 1000)],
      );
      return { file: toFile(rows[0]!) };
    });
  }

  /** The project's storage quota and what its files use; undefined when it has no quota. */
  async quota(projectId: string, defaultQuotaBytes?: number): Promise<{ quotaBytes: number; usedBytes: number } | undefined> {
    const rows = await this.db.query<{ quota: string | number | null; used: string | number }>(
      `SELECT coalesce(p.storage_quota_bytes, $2) AS quota, (SELECT coalesce(sum(bytes), 0) FROM files f WHERE f.project_id = p.id) AS used
       FROM projects p WHERE p.id = $1`,
      [projectId, defaultQuotaBytes ?? null],
    );
    const row = rows[0];
    return row && row.quota !== null ? { quotaBytes: Number(row.quota), usedBytes: Number(row.used) } : undefined;
  }

  async get(projectId: string, id: string): Promise<StoredFile | undefined> {
    const rows = await this.db.query<FileRow>(`SELECT ${COLUMNS} FROM files WHERE project_id = $1 AND id = $2 AND ${LIVE('$3')}`, [projectId, id, this.clock()]);
    return rows[0] && toFile(rows[0]);
  }

  /** Files of the project among `ids`; missing or foreign ids are simply absent. */
  async getMany(projectId: string, ids: string[]): Promise<StoredFile[]> {
    const rows = await this.db.query<FileRow>(`SELECT ${COLUMNS} FROM files WHERE project_id = $1 AND id = ANY($2::text[]) AND ${LIVE('$3')}`, [
      projectId, ids, this.clock(),
    ]);
    return rows.map(toFile);
  }

  async list(projectId: string, page: PageRequest, purpose?: string): Promise<Page<StoredFile>> {
    const { where, orderLimit, params, reversed } = keyset(
      page,
      { createdAt: 'created_at', id: 'id' },
      (param) => cursorLookup(`SELECT created_at, id FROM files WHERE project_id = $1 AND id = ${param}`, FILE_CURSORS, param),
      4,
    );
    const rows = await this.db.query<FileRow>(
      `SELECT ${COLUMNS} FROM files WHERE project_id = $1 AND ($2::text IS NULL OR purpose = $2) AND ${LIVE('$3')}${where}${orderLimit}`,
      [projectId, purpose ?? null, this.clock(), ...params],
    );
    if (rows.length > 0) return toPage(rows.map(toFile), page.limit, reversed);
    const lookup = cursorLookup('SELECT created_at, id FROM files WHERE project_id = $1 AND id = $2', FILE_CURSORS, '$2');
    return { data: [], hasMore: false, unknownCursor: await unknownCursor(this.db, page, lookup, [projectId]) };
  }

  /** Claims up to `limit` expired files for `leaseMs` (SKIP LOCKED and the lease keep concurrent sweepers apart). */
  async claimExpired(limit: number, leaseMs: number): Promise<StoredFile[]> {
    const now = this.clock();
    const rows = await this.db.query<FileRow>(
      `UPDATE files SET sweep_lease_until = $2
       WHERE id IN (
         SELECT id FROM files WHERE expires_at <= $1 AND (sweep_lease_until IS NULL OR sweep_lease_until < $1)
         ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED)
       AND (sweep_lease_until IS NULL OR sweep_lease_until < $1)
       RETURNING ${COLUMNS}`,
      [now, new Date(now.getTime() + leaseMs), limit],
    );
    return rows.map(toFile);
  }

  /**
   * Deletes the row; returns whether another row still names the same blob, so the caller knows
   * whether it may remove the bytes. Only files stored before per-file keys share a blob. Every
   * row naming the blob is locked first, so two deletes of files sharing one cannot both see the
   * other still there (which would leak the blob); no new row can take a shared key.
   */
  async delete(projectId: string, id: string): Promise<{ deleted: StoredFile; blobStillUsed: boolean } | undefined> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT id FROM files WHERE blob_key = (SELECT blob_key FROM files WHERE project_id = $1 AND id = $2) FOR UPDATE', [projectId, id]);
      const rows = await tx.query<FileRow>(
        `WITH deleted AS (DELETE FROM files WHERE project_id = $1 AND id = $2 RETURNING ${COLUMNS}), ${rememberDeletedCursors(FILE_CURSORS, 'id')}
         SELECT * FROM deleted`,
        [projectId, id],
      );
      if (!rows[0]) return undefined;
      const deleted = toFile(rows[0]);
      const others = await tx.query('SELECT 1 FROM files WHERE blob_key = $1 LIMIT 1', [deleted.blobKey]);
      return { deleted, blobStillUsed: others.length > 0 };
    });
  }
}
