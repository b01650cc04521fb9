/**
 * JSON request bodies: express's parser, then one check that no string holds text PostgreSQL
 * cannot store (NUL, unpaired surrogates). Rejecting it here gives a clear 400 instead of a
 * database error deep inside a request.
 */
import express, { type RequestHandler } from 'express';
import { InvalidRequestError } from '../errors.ts';

function findUnstorable(value: unknown, path: string, depth = 0): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') || !value.isWellFormed() ? path || 'body' : undefined;
  if (depth > 64 || value === null || typeof value !== 'object') return undefined;
  for (const [key, item] of Object.entries(value)) {
    if (key.includes('\u0000') || !key.isWellFormed()) return path || 'body';
    const found = findUnstorable(item, Array.isArray(value) ? `${path}[${key}]` : path ? `${path}.${key}` : key, depth + 1);
    if (found) return found;
  }
  return undefined;
}

export function jsonBody(limitBytes: number): RequestHandler[] {
  return [
    express.json({ limit: limitBytes }),
    (req, _res, next) => {
      const param = findUnstorable(req.body, '');
      if (param) throw new InvalidRequestError(`Invalid '${param}': text must not contain NUL characters or unpaired surrogates.`, { param });
      next();
    },
  ];
}
