/**
 * OpenAI's attribute filters (vector store search `filters`) and their translation to Qdrant
 * filter JSON over the chunk payload's `attributes` object.
 */
import type { Schemas } from '@qdrant/js-client-rest';
import { z } from 'zod';

export type AttributeValue = string | number | boolean;

export type ComparisonFilter =
  | { type: 'eq' | 'ne'; key: string; value: AttributeValue }
  | { type: 'gt' | 'gte' | 'lt' | 'lte'; key: string; value: number }
  | { type: 'in' | 'nin'; key: string; value: Array<string | number> };

export interface CompoundFilter {
  type: 'and' | 'or';
  filters: OpenAIFilter[];
}

export type OpenAIFilter = ComparisonFilter | CompoundFilter;

export type QdrantFilter = Schemas['Filter'];
type QdrantCondition = Schemas['Condition'];

/** Nesting depth of compound filters, counting the outermost filter as 1. */
export const MAX_FILTER_DEPTH = 8;
/** Comparisons plus compounds in one filter: a search filter, not a query language. */
export const MAX_FILTER_NODES = 256;

// Qdrant's JSON-path syntax has no escape sequence, so a key containing `"` or `\` cannot be addressed.
const attributeKeySchema = z
  .string()
  .min(1)
  .max(64)
  .refine((key) => !/["\\]/.test(key), 'Attribute keys in filters cannot contain `"` or `\\`.');

const comparisonSchema = z.discriminatedUnion('type', [
  z.object({ type: z.enum(['eq', 'ne']), key: attributeKeySchema, value: z.union([z.string(), z.number(), z.boolean()]) }),
  z.object({ type: z.enum(['gt', 'gte', 'lt', 'lte']), key: attributeKeySchema, value: z.number() }),
  z.object({ type: z.enum(['in', 'nin']), key: attributeKeySchema, value: z.array(z.union([z.string(), z.number()])).min(1).max(MAX_FILTER_NODES) }),
]);

/**
 * One schema per remaining depth instead of a lazy self-reference: a hostile 10,000-deep body is
 * rejected at depth MAX_FILTER_DEPTH rather than recursing until the stack overflows.
 */
function filterSchemaAtDepth(remaining: number): z.ZodType<OpenAIFilter> {
  if (remaining === 1) return comparisonSchema;
  return z.discriminatedUnion('type', [
    ...comparisonSchema.options,
    z.object({
      type: z.enum(['and', 'or']),
      filters: z.array(filterSchemaAtDepth(remaining - 1)).min(1).max(MAX_FILTER_NODES),
    }),
  ]) as z.ZodType<OpenAIFilter>;
}

/** Request validation for `filters`: depth at most MAX_FILTER_DEPTH, at most MAX_FILTER_NODES nodes. */
export const openAIFilterSchema: z.ZodType<OpenAIFilter> = filterSchemaAtDepth(MAX_FILTER_DEPTH).superRefine((filter, ctx) => {
  if (countNodes(filter) > MAX_FILTER_NODES) {
    ctx.addIssue({ code: 'custom', message: `A filter can have at most ${MAX_FILTER_NODES} comparisons and compounds.` });
  }
}).meta({
  id: 'AttributeFilter',
  description: `OpenAI's attribute filter: a comparison, or \`and\`/\`or\` of filters (depth at most ${MAX_FILTER_DEPTH}, at most ${MAX_FILTER_NODES} nodes).`,
});

function countNodes(filter: OpenAIFilter): number {
  if (filter.type === 'and' || filter.type === 'or') return 1 + filter.filters.reduce((sum, child) => sum + countNodes(child), 0);
  return 1;
}

/** Payload path of an attribute; keys outside Qdrant's bare-key alphabet are quoted (`attributes."a.b"`). */
export function attributePath(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? `attributes.${key}` : `attributes."${key}"`;
}

/** Every query and delete is confined to one project's knowledge base. */
export function scopeConditions(projectId: string, kbId: string): QdrantCondition[] {
  return [matchKeyword('project_id', projectId), matchKeyword('kb_id', kbId)];
}

export function matchKeyword(key: string, value: string): Schemas['FieldCondition'] {
  return { key, match: { value } };
}

/**
 * Semantics: an attribute a chunk lacks never satisfies eq/gt/gte/lt/lte/in, and always satisfies
 * ne/nin (Qdrant `must_not`). Numbers compare with `range` (an exact `match` on numbers only works
 * for integers and cannot use a float index); strings and booleans with `match`.
 */
export function translateFilter(filter: OpenAIFilter): QdrantFilter {
  const condition = toCondition(filter);
  return isFilter(condition) ? condition : { must: [condition] };
}

function toCondition(filter: OpenAIFilter): QdrantCondition {
  switch (filter.type) {
    case 'and':
      return { must: filter.filters.map(toCondition) };
    case 'or':
      // Qdrant's `should` is satisfied when at least one condition matches.
      return { should: filter.filters.map(toCondition) };
    case 'eq':
      return equals(filter.key, filter.value);
    case 'ne':
      return { must_not: [equals(filter.key, filter.value)] };
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte':
      return { key: attributePath(filter.key), range: { [filter.type]: filter.value } };
    case 'in':
      return anyOf(filter.key, filter.value);
    case 'nin':
      return { must_not: [anyOf(filter.key, filter.value)] };
  }
}

function equals(key: string, value: AttributeValue): QdrantCondition {
  const path = attributePath(key);
  return typeof value === 'number' ? { key: path, range: { gte: value, lte: value } } : { key: path, match: { value } };
}

function anyOf(key: string, values: Array<string | number>): QdrantCondition {
  const strings = values.filter((value): value is string => typeof value === 'string');
  const numbers = values.filter((value): value is number => typeof value === 'number');
  const conditions: QdrantCondition[] = numbers.map((value) => equals(key, value));
  if (strings.length > 0) conditions.unshift({ key: attributePath(key), match: { any: strings } });
  return conditions.length === 1 ? conditions[0]! : { should: conditions };
}

/** toCondition only builds field conditions (they have a `key`) and nested filters. */
function isFilter(condition: QdrantCondition): condition is QdrantFilter {
  return !('key' in condition);
}
