/** What the middleware chain learns about a request, kept on `res.locals` for the access log and usage accounting. */
import type { Response } from 'express';
import type { Caller } from '../store/api-keys.ts';

export interface RequestUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface RequestContext {
  requestId: string;
  startedAt: number;
  caller?: Caller;
  /** The model route that served the request (after alias resolution and fallback). */
  model?: string;
  usage?: RequestUsage;
}

export function context(res: Response): RequestContext {
  return res.locals as RequestContext;
}

export function callerOf(res: Response): Caller {
  const caller = context(res).caller;
  if (!caller) throw new Error('route mounted without authentication');
  return caller;
}
