/** OpenAI-style cursor pagination (`limit`, `order`, `after`, `before`) as keyset SQL over (created_at, id). */
import type { Queryable } from './database.ts';

export interface PageRequest {
  limit: number;
  order: 'asc' | 'desc';
  after?: string;
  before?: string;
}

export interface Page<T> {
  data: T[];
  hasMore: boolean;
  /** The cursor parameter that names no object of the list (live, or deleted within the day): the page is empty because of it. */
  unknownCursor?: 'after' | 'before';
}

/**
 * Returns the WHERE fragment and ORDER/LIMIT for a page. `cursorOf` is a query returning the
 * (created_at, id) of a cursor id within the same scope; `$n` placeholders start at `firstParam`.
 */
export function keyset(
  page: PageRequest,
  columns: { createdAt: string; id: string },
  cursorOf: (param: string) => string,
  firstParam: number,
): { where: string; orderLimit: string; params: unknown[]; reversed: boolean } {
  const key = `(${columns.createdAt}, ${columns.id})`;
  const conditions: string[] = [];
  const params: unknown[] = [];
  const forward = page.order === 'asc' ? '>' : '<';
  const backward = page.order === 'asc' ? '<' : '>';
  if (page.after) {
    params.push(page.after);
    conditions.push(`${key} ${forward} (${cursorOf(`$${firstParam + params.length - 1}`)})`);
  }
  if (page.before) {
    params.push(page.before);
    conditions.push(`${key} ${backward} (${cursorOf(`$${firstParam + params.length - 1}`)})`);
  }
  // A page before a cursor is the `limit` rows nearest to it: read backwards, then put them back in order.
  const reversed = page.before !== undefined && page.after === undefined;
  const ascending = (page.order === 'asc') !== reversed;
  const direction = ascending ? 'ASC' : 'DESC';
  return {
    where: conditions.length > 0 ? ` AND ${conditions.join(' AND ')}` : '',
    // One extra row tells whether there is a next page.
    orderLimit: ` ORDER BY ${columns.createdAt} ${direction}, ${columns.id} ${direction} LIMIT ${page.limit + 1}`,
    params,
    reversed,
  };
}

export function toPage<T>(rows: T[], limit: number, reversed = false): Page<T> {
  const data = rows.slice(0, limit);
  return { data: reversed ? data.reverse() : data, hasMore: rows.length > limit };
}

/**
 * Cursor lookup that also finds deleted objects (kept in `deleted_cursors` for a day), so a page
 * after an object deleted meanwhile continues where it was instead of coming back empty.
 * `live` selects (created_at, id) of a live row; `scope` is an SQL expression naming the list.
 */
export function cursorLookup(live: string, scope: string, idParam: string): string {
  return `(${live}) UNION ALL (SELECT created_at, id FROM deleted_cursors WHERE scope = ${scope} AND id = ${idParam}) LIMIT 1`;
}

/**
 * Which cursor names no object of the list. Asked only when a page came back empty, since a cursor
 * that matches nothing makes one; `lookup` is a cursorLookup() whose last placeholder is the cursor.
 */
export async function unknownCursor(db: Queryable, page: PageRequest, lookup: string, scopeParams: unknown[]): Promise<'after' | 'before' | undefined> {
  for (const name of ['after', 'before'] as const) {
    const id = page[name];
    if (id !== undefined && (await db.query(lookup, [...scopeParams, id])).length === 0) return name;
  }
  return undefined;
}

/**
 * CTEs for a DELETE … RETURNING named `deleted`: remember each deleted row as a cursor of `scope`,
 * and forget cursors older than a day.
 */
export function rememberDeletedCursors(scope: string, idColumn: string): string {
  return `remembered AS (
      INSERT INTO deleted_cursors (scope, id, created_at) SELECT ${scope}, ${idColumn}, created_at FROM deleted
      ON CONFLICT (scope, id) DO UPDATE SET created_at = EXCLUDED.created_at, deleted_at = now()),
    forgotten AS (DELETE FROM deleted_cursors WHERE deleted_at < now() - interval '1 day')`;
}

