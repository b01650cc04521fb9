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
}

/** The knowledge-base list of the project in $1. */
const KB_CURSORS = "'knowledge_bases:' || $1";

const SELECT = `
  SELECT kb.id, kb.project_id, kb.name, kb.description, kb.metadata, kb.embedding_model, kb.embedding_dimensions,
         kb.chunking_strategy, kb.created_at, kb.last_active_at,
         count(f.id) FILTER (WHERE f.status = 'in_progress')::int AS in_progress,
         count(f.id) FILTER (WHERE f.status = 'completed')::int AS completed,
         count(f.id) FILTER (WHERE f.status = 'failed')::int AS failed,
         count(f.id) FILTER (WHERE f.status = 'cancelled')::int AS cancelled,
         coalesce(sum(f.usage_bytes), 0)::bigint AS usage_bytes,
         coalesce(sum(f.chunk_count), 0)::bigint AS chunk_count
  FROM knowledge_bases kb LEFT JOIN knowledge_base_files f ON f.kb_id = kb.id`;
const GROUP = ' GROUP BY kb.id';

function toKnowledgeBase(row: KbRow): KnowledgeBase {
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
  };
}

export type SearchableKnowledgeBase = Pick<KnowledgeBase, 'id' | 'embeddingModel' | 'embeddingDimensions'>;

export interface NewKnowledgeBase {
  projectId: string;
  name: string;
  description: string | null;
  metadata: Record<string, string>;
  embeddingModel: string;
  embeddingDimensions: number | null;
  chunkingStrategy: ChunkingStrategy;
}

export class KnowledgeBaseStore {
  constructor(private readonly db: Database) {}

  async create(kb: NewKnowledgeBase): Promise<KnowledgeBase> {
    const id = newId('kb_', 24);
    await this.db.query(
      `INSERT INTO knowledge_bases (id, project_id, name, description, metadata, embedding_model, embedding_dimensions, chunking_strategy)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [id, kb.projectId, kb.name, kb.description, JSON.stringify(kb.metadata), kb.embeddingModel, kb.embeddingDimensions, JSON.stringify(kb.chunkingStrategy)],
    );
    return (await this.get(kb.projectId, id))!;
  }

  async get(projectId: string, id: string): Promise<KnowledgeBase | undefined> {
    const rows = await this.db.query<KbRow>(`${SELECT} WHERE kb.project_id = $1 AND kb.id = $2${GROUP}`, [projectId, id]);
    return rows[0] && toKnowledgeBase(rows[0]);
  }

  /** What a search needs, without counting the files: this runs on every retrieval. */
  async getSearchable(projectId: string, id: string): Promise<SearchableKnowledgeBase | undefined> {
    const rows = await this.db.query<{ id: string; embedding_model: string; embedding_dimensions: number | null }>(
      'SELECT id, embedding_model, embedding_dimensions FROM knowledge_bases WHERE project_id = $1 AND id = $2',
      [projectId, id],
    );
    const row = rows[0];
    return row && { id: row.id, embeddingModel: row.embedding_model, embeddingDimensions: row.embedding_dimensions };
  }

  /** By id or, for the CLI, by name (the newest of that name). */
  async find(projectId: string, idOrName: string): Promise<KnowledgeBase | undefined> {
    const rows = await this.db.query<KbRow>(
      `${SELECT} WHERE kb.project_id = $1 AND (kb.id = $2 OR kb.name = $2)${GROUP} ORDER BY kb.id = $2 DESC, kb.created_at DESC LIMIT 1`,
      [projectId, idOrName],
    );
    return rows[0] && toKnowledgeBase(rows[0]);
  }

  async list(projectId: string, page: PageRequest): Promise<Page<KnowledgeBase>> {
    const { where, orderLimit, params, reversed } = keyset(
      page,
      { createdAt: 'kb.created_at', id: 'kb.id' },
      (param) => cursorLookup(`SELECT created_at, id FROM knowledge_bases WHERE project_id = $1 AND id = ${param}`, KB_CURSORS, param),
      2,
    );
    const rows = await this.db.query<KbRow>(`${SELECT} WHERE kb.project_id = $1${where}${GROUP}${orderLimit}`, [projectId, ...params]);
    if (rows.length > 0) return toPage(rows.map(toKnowledgeBase), page.limit, reversed);
    const lookup = cursorLookup('SELECT created_at, id FROM knowledge_bases WHERE project_id = $1 AND id = $2', KB_CURSORS, '$2');
    return { data: [], hasMore: false, unknownCursor: await unknownCursor(this.db, page, lookup, [projectId]) };
  }

  async update(
    projectId: string,
    id: string,
    changes: { name?: string; description?: string | null; metadata?: Record<string, string> },
  ): Promise<KnowledgeBase | undefined> {
    const rows = await this.db.query(
      `UPDATE knowledge_bases SET name = coalesce($3, name),
         description = CASE WHEN $4::boolean THEN $5 ELSE description END,
         metadata = coalesce($6::jsonb, metadata), last_active_at = now()
       WHERE project_id = $1 AND id = $2 RETURNING id`,
      [projectId, id, changes.name ?? null, changes.description !== undefined, changes.description ?? null,
        changes.metadata ? JSON.stringify(changes.metadata) : null],
    );
    return rows.length > 0 ? this.get(projectId, id) : undefined;
  }

  async touch(id: string): Promise<void> {
    await this.db.query('UPDATE knowledge_bases SET last_active_at = now() WHERE id = $1', [id]);
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
