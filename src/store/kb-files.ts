/** Files attached to knowledge bases, their ingestion state, and file batches. */
import { randomUUID } from 'node:crypto';
import { newId } from '../ids.ts';
import type { Database, Queryable } from './database.ts';
import type { ChunkingStrategy, FileCounts } from './knowledge-bases.ts';
import { cursorLookup, keyset, rememberDeletedCursors, toPage, unknownCursor, type Page, type PageRequest } from './pagination.ts';

export type KbFileStatus = 'in_progress' | 'completed' | 'failed' | 'cancelled';
export type Attributes = Record<string, string | number | boolean>;

export interface KbFile {
  /** Row id: also the ingestion job id, so duplicate jobs collapse. */
  id: string;
  kbId: string;
  fileId: string;
  projectId: string;
  batchId: string | null;
  status: KbFileStatus;
  lastError: { code: string; message: string } | null;
  attributes: Attributes;
  chunkingStrategy: ChunkingStrategy;
  chunkCount: number;
  usageBytes: number;
  progress: number;
  generation: string;
  createdAt: Date;
}

interface KbFileRow {
  id: string;
  kb_id: string;
  file_id: string;
  project_id: string;
  batch_id: string | null;
  status: KbFileStatus;
  last_error: { code: string; message: string } | null;
  attributes: Attributes;
  chunking_strategy: ChunkingStrategy;
  chunk_count: number;
  usage_bytes: string | number;
  progress: number;
  generation: string;
  created_at: Date | string;
}

/** The files list of the knowledge base in $2. */
const KB_FILE_CURSORS = "'kb_files:' || $2";
const COLUMNS = `id, kb_id, file_id, project_id, batch_id, status, last_error, attributes, chunking_strategy,
  chunk_count, usage_bytes, progress, generation, created_at`;

function toKbFile(row: KbFileRow): KbFile {
  return {
    id: row.id,
    kbId: row.kb_id,
    fileId: row.file_id,
    projectId: row.project_id,
    batchId: row.batch_id,
    status: row.status,
    lastError: row.last_error,
    attributes: row.attributes,
    chunkingStrategy: row.chunking_strategy,
    chunkCount: row.chunk_count,
    usageBytes: Number(row.usage_bytes),
    progress: row.progress,
    generation: row.generation,
    createdAt: new Date(row.created_at),
  };
}

export interface Attachment {
  fileId: string;
  attributes: Attributes;
  chunkingStrategy: ChunkingStrategy;
}

export interface FileBatch {
  id: string;
  kbId: string;
  cancelled: boolean;
  createdAt: Date;
  fileCounts: FileCounts;
}

export class KbFileStore {
  constructor(private readonly db: Database) {}

  /**
   * Attaches files (re-attaching restarts ingestion with a new generation). Runs in one
   * transaction so a batch is all or nothing.
   */
  /** One statement for the whole list (a batch may hold 2,000 files). A file listed twice is attached once, as its last entry says. */
  async attach(projectId: string, kbId: string, requested: Attachment[], batchId: string | null = null, tx?: Queryable): Promise<KbFile[]> {
    // ON CONFLICT DO UPDATE cannot touch one row twice in a statement.
    const attachments = [...new Map(requested.map((attachment) => [attachment.fileId, attachment])).values()];
    if (attachments.length === 0) return [];
    const rows = await (tx ?? this.db).query<KbFileRow>(
      `INSERT INTO knowledge_base_files (id, kb_id, file_id, project_id, batch_id, status, attributes, chunking_strategy, generation)
       SELECT a.id, $1, a.file_id, $2, $3, 'in_progress', a.attributes::jsonb, a.chunking_strategy::jsonb, a.generation
       FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS a(id, file_id, attributes, chunking_strategy, generation)
       ON CONFLICT (kb_id, file_id) DO UPDATE SET status = 'in_progress', last_error = NULL, progress = 0,
         attributes = EXCLUDED.attributes, chunking_strategy = EXCLUDED.chunking_strategy,
         batch_id = EXCLUDED.batch_id, generation = EXCLUDED.generation, requeues = 0, updated_at = now()
       RETURNING ${COLUMNS}`,
      [
        kbId,
        projectId,
        batchId,
        attachments.map(() => newId('kbf_', 24)),
        attachments.map((attachment) => attachment.fileId),
        attachments.map((attachment) => JSON.stringify(attachment.attributes)),
        attachments.map((attachment) => JSON.stringify(attachment.chunkingStrategy)),
        attachments.map(() => randomUUID()),
      ],
    );
    // RETURNING has no order: give the rows back in the order asked for.
    const byFile = new Map(rows.map((row) => [row.file_id, toKbFile(row)]));
    return attachments.map((attachment) => byFile.get(attachment.fileId)!);
  }

  async get(projectId: string, kbId: string, fileId: string): Promise<KbFile | undefined> {
    const rows = await this.db.query<KbFileRow>(
      `SELECT ${COLUMNS} FROM knowledge_base_files WHERE project_id = $1 AND kb_id = $2 AND file_id = $3`,
      [projectId, kbId, fileId],
    );
    return rows[0] && toKbFile(rows[0]);
  }

  async byId(id: string): Promise<KbFile | undefined> {
    const rows = await this.db.query<KbFileRow>(`SELECT ${COLUMNS} FROM knowledge_base_files WHERE id = $1`, [id]);
    return rows[0] && toKbFile(rows[0]);
  }

  async list(
    projectId: string,
    kbId: string,
    page: PageRequest,
    options: { status?: KbFileStatus; batchId?: string } = {},
  ): Promise<Page<KbFile>> {
    const { where, orderLimit, params, reversed } = keyset(
      page,
      { createdAt: 'created_at', id: 'file_id' },
      (param) => cursorLookup(`SELECT created_at, file_id FROM knowledge_base_files WHERE kb_id = $2 AND file_id = ${param}`, KB_FILE_CURSORS, param),
      5,
    );
    const rows = await this.db.query<KbFileRow>(
      `SELECT ${COLUMNS} FROM knowledge_base_files
       WHERE project_id = $1 AND kb_id = $2 AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR batch_id = $4)${where}${orderLimit}`,
      [projectId, kbId, options.status ?? null, options.batchId ?? null, ...params],
    );
    if (rows.length > 0) return toPage(rows.map(toKbFile), page.limit, reversed);
    const lookup = cursorLookup(
      'SELECT created_at, file_id FROM knowledge_base_files WHERE project_id = $1 AND kb_id = $2 AND file_id = $3',
      KB_FILE_CURSORS,
      '$3',
    );
    return { data: [], hasMore: false, unknownCursor: await unknownCursor(this.db, page, lookup, [projectId, kbId]) };
  }

  /** Every attachment of a file, across the project's knowledge bases. */
  async ofFile(projectId: string, fileId: string): Promise<KbFile[]> {
    const rows = await this.db.query<KbFileRow>(`SELECT ${COLUMNS} FROM knowledge_base_files WHERE project_id = $1 AND file_id = $2`, [projectId, fileId]);
    return rows.map(toKbFile);
  }

  async inProgress(): Promise<KbFile[]> {
    const rows = await this.db.query<KbFileRow>(`SELECT ${COLUMNS} FROM knowledge_base_files WHERE status = 'in_progress' ORDER BY created_at`);
    return rows.map(toKbFile);
  }

  /** Rows in progress that nothing has updated for `graceMs`, oldest first: candidates for the reconciler. */
  async stale(graceMs: number, limit: number): Promise<KbFile[]> {
    const rows = await this.db.query<KbFileRow>(
      `SELECT ${COLUMNS} FROM knowledge_base_files
       WHERE status = 'in_progress' AND updated_at < now() - make_interval(secs => $1::double precision / 1000)
       ORDER BY updated_at LIMIT $2`,
      [graceMs, limit],
    );
    return rows.map(toKbFile);
  }

  /**
   * Claims stale rows for re-enqueueing by touching them, and returns the ones this call claimed
   * with how often in a row they were re-enqueued without progress (this time included). The
   * condition is re-checked on the locked row, so of several reconcilers racing for a row exactly
   * one wins it, and nobody claims it again for another grace period.
   */
  async claimStale(rows: KbFile[], graceMs: number): Promise<Array<KbFile & { requeues: number }>> {
    if (rows.length === 0) return [];
    const claimed = await this.db.query<KbFileRow & { requeues: number }>(
      `UPDATE knowledge_base_files f SET updated_at = now(), requeues = f.requeues + 1
       FROM unnest($1::text[], $2::text[]) AS c(id, generation)
       WHERE f.id = c.id AND f.generation = c.generation AND f.status = 'in_progress'
         AND f.updated_at < now() - make_interval(secs => $3::double precision / 1000)
       RETURNING ${COLUMNS.split(',').map((column) => `f.${column.trim()}`).join(', ')}, f.requeues`,
      [rows.map((row) => row.id), rows.map((row) => row.generation), graceMs],
    );
    return claimed.map((row) => ({ ...toKbFile(row), requeues: row.requeues }));
  }

  async delete(projectId: string, kbId: string, fileId: string): Promise<KbFile | undefined> {
    const rows = await this.db.query<KbFileRow>(
      `WITH deleted AS (DELETE FROM knowledge_base_files WHERE project_id = $1 AND kb_id = $2 AND file_id = $3 RETURNING ${COLUMNS}),
         ${rememberDeletedCursors(KB_FILE_CURSORS, 'file_id')}
       SELECT * FROM deleted`,
      [projectId, kbId, fileId],
    );
    return rows[0] && toKbFile(rows[0]);
  }

  /** Replaces the attachment's attributes (OpenAI's update replaces, it does not merge). */
  async updateAttributes(projectId: string, kbId: string, fileId: string, attributes: Attributes): Promise<KbFile | undefined> {
    const rows = await this.db.query<KbFileRow>(
      `UPDATE knowledge_base_files SET attributes = $4::jsonb, updated_at = now()
       WHERE project_id = $1 AND kb_id = $2 AND file_id = $3 RETURNING ${COLUMNS}`,
      [projectId, kbId, fileId, JSON.stringify(attributes)],
    );
    return rows[0] && toKbFile(rows[0]);
  }

  /** Removes every file of a knowledge base (its storage is being reclaimed); returns them, for their jobs to be cancelled. */
  async deleteAllOf(kbId: string): Promise<KbFile[]> {
    const rows = await this.db.query<KbFileRow>(`DELETE FROM knowledge_base_files WHERE kb_id = $1 RETURNING ${COLUMNS}`, [kbId]);
    return rows.map(toKbFile);
  }

  /** The job's view: is this generation still the one wanted, and still in progress? */
  async isCurrent(id: string, generation: string): Promise<boolean> {
    const rows = await this.db.query(
      "SELECT 1 FROM knowledge_base_files WHERE id = $1 AND generation = $2 AND status = 'in_progress'",
      [id, generation],
    );
    return rows.length > 0;
  }

  async setProgress(id: string, generation: string, progress: number): Promise<void> {
    await this.db.query(
      "UPDATE knowledge_base_files SET progress = $3, requeues = 0, updated_at = now() WHERE id = $1 AND generation = $2 AND status = 'in_progress'",
      [id, generation, progress],
    );
  }

  /** Returns false when the row was deleted, cancelled or re-attached meanwhile. */
  async complete(id: string, generation: string, chunkCount: number, usageBytes: number): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE knowledge_base_files SET status = 'completed', chunk_count = $3, usage_bytes = $4, progress = 1, updated_at = now()
       WHERE id = $1 AND generation = $2 AND status = 'in_progress' RETURNING id`,
      [id, generation, chunkCount, usageBytes],
    );
    return rows.length > 0;
  }

  async fail(id: string, generation: string, error: { code: string; message: string }): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE knowledge_base_files SET status = 'failed', last_error = $3, chunk_count = 0, usage_bytes = 0, updated_at = now()
       WHERE id = $1 AND generation = $2 AND status = 'in_progress' RETURNING id`,
      [id, generation, JSON.stringify(error)],
    );
    return rows.length > 0;
  }

  async createBatch(projectId: string, kbId: string, attachments: Attachment[]): Promise<{ batch: FileBatch; files: KbFile[] }> {
    const id = newId('kbfb_', 24);
    const files = await this.db.transaction(async (tx) => {
      await tx.query('INSERT INTO file_batches (id, kb_id, project_id) VALUES ($1, $2, $3)', [id, kbId, projectId]);
      return this.attach(projectId, kbId, attachments, id, tx);
    });
    return { batch: (await this.getBatch(projectId, kbId, id))!, files };
  }

  async getBatch(projectId: string, kbId: string, batchId: string): Promise<FileBatch | undefined> {
    const rows = await this.db.query<{ id: string; kb_id: string; batch_cancelled: boolean; created_at: Date | string } & Omit<FileCounts, 'total'>>(
      `SELECT b.id, b.kb_id, b.cancelled AS batch_cancelled, b.created_at,
         count(f.id) FILTER (WHERE f.status = 'in_progress')::int AS in_progress,
         count(f.id) FILTER (WHERE f.status = 'completed')::int AS completed,
         count(f.id) FILTER (WHERE f.status = 'failed')::int AS failed,
         count(f.id) FILTER (WHERE f.status = 'cancelled')::int AS cancelled
       FROM file_batches b LEFT JOIN knowledge_base_files f ON f.batch_id = b.id
       WHERE b.project_id = $1 AND b.kb_id = $2 AND b.id = $3 GROUP BY b.id`,
      [projectId, kbId, batchId],
    );
    const row = rows[0];
    if (!row) return undefined;
    const counts = { in_progress: row.in_progress, completed: row.completed, failed: row.failed, cancelled: row.cancelled };
    return {
      id: row.id,
      kbId: row.kb_id,
      cancelled: row.batch_cancelled,
      createdAt: new Date(row.created_at),
      fileCounts: { ...counts, total: counts.in_progress + counts.completed + counts.failed + counts.cancelled },
    };
  }

  /** Marks the batch cancelled and its unfinished files `cancelled`; returns those files. */
  async cancelBatch(projectId: string, kbId: string, batchId: string): Promise<KbFile[]> {
    return this.db.transaction(async (tx) => {
      await tx.query('UPDATE file_batches SET cancelled = true WHERE project_id = $1 AND kb_id = $2 AND id = $3', [projectId, kbId, batchId]);
      const rows = await tx.query<KbFileRow>(
        `UPDATE knowledge_base_files SET status = 'cancelled', updated_at = now()
         WHERE project_id = $1 AND kb_id = $2 AND batch_id = $3 AND status = 'in_progress' RETURNING ${COLUMNS}`,
        [projectId, kbId, batchId],
      );
      return rows.map(toKbFile);
    });
  }
}
