/** The knowledge_bases table. Files attached to them live in kb-files.ts. */
import { newId } from '../ids.ts';
import type { ChunkingStrategy } from '../ingest/chunker.ts';
import type { Database } from './database.ts';
import { cursorLookup, keyset, rememberDeletedCursors, toPage, unknownCursor, type Page, type PageRequest } from './pagination.ts';

/** Stored as given in `chunking_strategy`; the type belongs to the chunker that reads it. */
export type { ChunkingStrategy };

export interface FileCounts {
  in_progress: number;
  completed: number;
  failed: number;
  cancelled: number;
  total: number;
}

export interface KnowledgeBase {
  id: string;
  projectId: string;
  name: string;
  description: string | null;
  metadata: Record<string, string>;
  /** 'none' for lexical-only. */
  embeddingModel: string;
  embeddingDimensions: number | null;
  chunkingStrategy: ChunkingStrategy;
  createdAt: Date;
  lastActiveAt: Date;
  fileCounts: FileCounts;
  usageBytes: number;
  /** Chunks indexed across all completed files. */
  chunkCount: number;
  /** `expires_after: {anchor: 'last_active_at', days}`; null: never expires. */
  expiresAfterDays: number | null;
  expiresAt: Date | null;
  /** Past `expiresAt` (it then stays expired: use no longer moves `last_active_at`). */
  expired: boolean;
}

interface KbRow {
  id: string;
  project_id: string;
  name: string;
  description: string | null;
  metadata: Record<string, string>;
  embedding_model: string;
  embedding_dimensions: number | null;
  chunking_strategy: ChunkingStrategy;
  created_at: Date | string;
  last_active_at: Date | string;
  in_progress: number;
  completed: number;
  failed: number;
  cancelled: number;
  usage_bytes: string | number;
  chunk_count: string | number;
  expires_after_days: number | null;
  reclaimed_at: Date | string | null;
}

/** The knowledge-base list of the project in $1. */
const KB_CURSORS = "'knowledge_bases:' || $1";

const SELECT = `
  SELECT kb.id, kb.project_id, kb.name, kb.description, kb.metadata, kb.embedding_model, kb.embedding_dimensions,
         kb.chunking_strategy, kb.created_at, kb.last_active_at, kb.expires_after_days, kb.reclaimed_at,
         count(f.id) FILTER (WHERE f.status = 'in_progress')::int AS in_progress,
         count(f.id) FILTER (WHERE f.status = 'completed')::int AS completed,
         count(f.id) FILTER (WHERE f.status = 'failed')::int AS failed,
         count(f.id) FILTER (WHERE f.status = 'cancelled')::int AS cancelled,
         coalesce(sum(f.usage_bytes), 0)::bigint AS usage_bytes,
         coalesce(sum(f.chunk_count), 0)::bigint AS chunk_count
  FROM knowledge_bases kb LEFT JOIN knowledge_base_files f ON f.kb_id = kb.id`;
const GROUP = ' GROUP BY kb.id';

/** SQL: the knowledge base in `alias` has expired by the time in `now`. */
const EXPIRED = (alias: string, now: string) =>
  `(${alias}reclaimed_at IS NOT NULL OR (${alias}expires_after_days IS NOT NULL AND ${alias}last_active_at + ${alias}expires_after_days * interval '1 day' <= ${now}))`;

function expiryOf(lastActiveAt: Date, days: number | null): Date | null {
  return days === null ? null : new Date(lastActiveAt.getTime() + days * 86_400_000);
}

function toKnowledgeBase(row: KbRow, now: Date): KnowledgeBase {
  const expiresAt = expiryOf(new Date(row.last_active_at), row.expires_after_days);
  const counts = { in_progress: row.in_progress, completed: row.completed, failed: row.failed, cancelled: row.cancelled };
  return {
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    description: row.description,
    metadata: row.metadata,
    embeddingModel: row.embedding_model,
    embeddingDimensions: row.embedding_dimensions,
    chunkingStrategy: row.chunking_strategy,
    createdAt: new Date(row.created_at),
    lastActiveAt: new Date(row.last_active_at),
    fileCounts: { ...counts, total: counts.in_progress + counts.completed + counts.failed + counts.cancelled },
    usageBytes: Number(row.usage_bytes),
    chunkCount: Number(row.chunk_count),
    expiresAfterDays: row.expires_after_days,
    expiresAt,
    expired: row.reclaimed_at !== null || (expiresAt !== null && expiresAt <= now),
  };
}

export type SearchableKnowledgeBase = Pick<KnowledgeBase, 'id' | 'embeddingModel' | 'embeddingDimensions' | 'expired'>;

/** An expired knowledge base claimed by one sweeper. */
export type ExpiredKnowledgeBase = Pick<KnowledgeBase, 'id' | 'projectId' | 'embeddingModel' | 'embeddingDimensions'>;

export interface NewKnowledgeBase {
  projectId: string;
  name: string;
  description: string | null;
  metadata: Record<string, string>;
  embeddingModel: string;
  embeddingDimensions: number | null;
  chunkingStrategy: ChunkingStrategy;
  expiresAfterDays: number | null;
}

export class KnowledgeBaseStore {
  constructor(
    private readonly db: Database,
    /** Expiry is judged by this clock (tests move it), not by the database's. */
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async create(kb: NewKnowledgeBase): Promise<KnowledgeBase> {
    const id = newId('kb_', 24);
    await this.db.query(
      `INSERT INTO knowledge_bases (id, project_id, name, description, metadata, embedding_model, embedding_dimensions, chunking_strategy,
         expires_after_days, last_active_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [id, kb.projectId, kb.name, kb.description, JSON.stringify(kb.metadata), kb.embeddingModel, kb.embeddingDimensions, JSON.stringify(kb.chunkingStrategy),
        kb.expiresAfterDays, this.clock()],
    );
    return (await this.get(kb.projectId, id))!;
  }

  async get(projectId: string, id: string): Promise<KnowledgeBase | undefined> {
    const rows = await this.db.query<KbRow>(`${SELECT} WHERE kb.project_id = $1 AND kb.id = $2${GROUP}`, [projectId, id]);
    return rows[0] && toKnowledgeBase(rows[0], this.clock());
  }

  /** What a search needs, without counting the files: this runs on every retrieval. */
  async getSearchable(projectId: string, id: string): Promise<SearchableKnowledgeBase | undefined> {
    const rows = await this.db.query<{ id: string; embedding_model: string; embedding_dimensions: number | null; expired: boolean }>(
      `SELECT id, embedding_model, embedding_dimensions, ${EXPIRED('', '$3')} AS expired FROM knowledge_bases WHERE project_id = $1 AND id = $2`,
      [projectId, id, this.clock()],
    );
    const row = rows[0];
    return row && { id: row.id, embeddingModel: row.embedding_model, embeddingDimensions: row.embedding_dimensions, expired: row.expired };
  }

  /** By id or, for the CLI, by name (the newest of that name). */
  async find(projectId: string, idOrName: string): Promise<KnowledgeBase | undefined> {
    const rows = await this.db.query<KbRow>(
      `${SELECT} WHERE kb.project_id = $1 AND (kb.id = $2 OR kb.name = $2)${GROUP} ORDER BY kb.id = $2 DESC, kb.created_at DESC LIMIT 1`,
      [projectId, idOrName],
    );
    return rows[0] && toKnowledgeBase(rows[0], this.clock());
  }

  async list(projectId: string, page: PageRequest): Promise<Page<KnowledgeBase>> {
    const { where, orderLimit, params, reversed } = keyset(
      page,
      { createdAt: 'kb.created_at', id: 'kb.id' },
      (param) => cursorLookup(`SELECT created_at, id FROM knowledge_bases WHERE project_id = $1 AND id = ${param}`, KB_CURSORS, param),
      2,
    );
    const rows = await this.db.query<KbRow>(`${SELECT} WHERE kb.project_id = $1${where}${GROUP}${orderLimit}`, [projectId, ...params]);
    const now = this.clock();
    if (rows.length > 0) return toPage(rows.map((row) => toKnowledgeBase(row, now)), page.limit, reversed);
    const lookup = cursorLookup('SELECT created_at, id FROM knowledge_bases WHERE project_id = $1 AND id = $2', KB_CURSORS, '$2');
    return { data: [], hasMore: false, unknownCursor: await unknownCursor(this.db, page, lookup, [projectId]) };
  }

  async update(
    projectId: string,
    id: string,
    changes: { name?: string; description?: string | null; metadata?: Record<string, string>; expiresAfterDays?: number | null },
  ): Promise<KnowledgeBase | undefined> {
    // An expired knowledge base keeps its last_active_at: an update must not bring it back.
    const rows = await this.db.query(
      `UPDATE knowledge_bases SET name = coalesce($3, name),
         description = CASE WHEN $4::boolean THEN $5 ELSE description END,
         metadata = coalesce($6::jsonb, metadata),
         expires_after_days = CASE WHEN $7::boolean THEN $8::integer ELSE expires_after_days END,
         last_active_at = CASE WHEN ${EXPIRED('', '$9')} THEN last_active_at ELSE $9 END
       WHERE project_id = $1 AND id = $2 RETURNING id`,
      [projectId, id, changes.name ?? null, changes.description !== undefined, changes.description ?? null,
        changes.metadata ? JSON.stringify(changes.metadata) : null, changes.expiresAfterDays !== undefined, changes.expiresAfterDays ?? null, this.clock()],
    );
    return rows.length > 0 ? this.get(projectId, id) : undefined;
  }

  /** Records use, unless it has already expired (use does not bring an expired knowledge base back). */
  async touch(id: string): Promise<void> {
    await this.db.query(`UPDATE knowledge_bases SET last_active_at = $2 WHERE id = $1 AND NOT ${EXPIRED('', '$2')}`, [id, this.clock()]);
  }

  /**
   * Claims up to `limit` expired knowledge bases whose storage is not reclaimed yet, for `leaseMs`:
   * SKIP LOCKED and the lease keep concurrent sweepers (API replicas, workers) off each other's rows.
   */
  async claimExpired(limit: number, leaseMs: number): Promise<ExpiredKnowledgeBase[]> {
    const now = this.clock();
    const rows = await this.db.query<{ id: string; project_id: string; embedding_model: string; embedding_dimensions: number | null }>(
      `UPDATE knowledge_bases SET sweep_lease_until = $2
       WHERE id IN (
         SELECT id FROM knowledge_bases
         WHERE reclaimed_at IS NULL AND expires_after_days IS NOT NULL AND ${EXPIRED('', '$1')}
           AND (sweep_lease_until IS NULL OR sweep_lease_until < $1)
         ORDER BY last_active_at LIMIT $3 FOR UPDATE SKIP LOCKED)
       AND (sweep_lease_until IS NULL OR sweep_lease_until < $1)
       RETURNING id, project_id, embedding_model, embedding_dimensions`,
      [now, new Date(now.getTime() + leaseMs), limit],
    );
    return rows.map((row) => ({ id: row.id, projectId: row.project_id, embeddingModel: row.embedding_model, embeddingDimensions: row.embedding_dimensions }));
  }

  async markReclaimed(id: string): Promise<void> {
    await this.db.query('UPDATE knowledge_bases SET reclaimed_at = $2, sweep_lease_until = NULL WHERE id = $1', [id, this.clock()]);
  }

  async delete(projectId: string, id: string): Promise<KnowledgeBase | undefined> {
    const kb = await this.get(projectId, id);
    if (!kb) return undefined;
    await this.db.query(
      `WITH deleted AS (DELETE FROM knowledge_bases WHERE project_id = $1 AND id = $2 RETURNING id, created_at), ${rememberDeletedCursors(KB_CURSORS, 'id')}
       SELECT id FROM deleted`,
      [projectId, id],
    );
    return kb;
  }
}
