/** OpenAI's list query parameters and list envelope. */
import { z } from 'zod';
import { InvalidRequestError } from '../errors.ts';
import type { Page, PageRequest } from '../store/pagination.ts';

export function pageQuery(defaultLimit: number, maxLimit: number) {
  return z.object({
    limit: z.coerce.number().int().min(1).max(maxLimit).default(defaultLimit),
    order: z.enum(['asc', 'desc']).default('desc'),
    after: z.string().min(1).optional(),
    before: z.string().min(1).optional(),
  });
}

export function pageRequest(query: { limit: number; order: 'asc' | 'desc'; after?: string; before?: string }): PageRequest {
  return { limit: query.limit, order: query.order, after: query.after, before: query.before };
}

/** The list envelope; a page that is empty because its cursor names nothing is the client's error, as on OpenAI (not an empty list). */
export function listBody<T, Out>(page: Page<T>, shape: (item: T) => Out, idOf: (item: T) => string) {
  if (page.unknownCursor) {
    throw new InvalidRequestError(
      `Invalid '${page.unknownCursor}': it must be the id of an object in this list (such as the previous page's last_id), and no such object exists.`,
      { param: page.unknownCursor },
    );
  }
  return {
    object: 'list' as const,
    data: page.data.map(shape),
    first_id: page.data[0] ? idOf(page.data[0]) : null,
    last_id: page.data.length > 0 ? idOf(page.data[page.data.length - 1]!) : null,
    has_more: page.hasMore,
  };
}
