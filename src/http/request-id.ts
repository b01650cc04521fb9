import type { RequestHandler } from 'express';
import onHeaders from 'on-headers';
import { newId } from '../ids.ts';
import { context } from './context.ts';

const CLIENT_ID = /^[\w.:-]{1,128}$/;

/** Accepts the client's `x-request-id` when it is sane, else makes one; adds `openai-processing-ms` as headers go out. */
export function requestId(): RequestHandler {
  return (req, res, next) => {
    const fromClient = req.get('x-request-id');
    const id = fromClient && CLIENT_ID.test(fromClient) ? fromClient : newId('req_', 24);
    const ctx = context(res);
    ctx.requestId = id;
    ctx.startedAt = performance.now();
    res.setHeader('x-request-id', id);
    onHeaders(res, () => {
      res.setHeader('openai-processing-ms', String(Math.round(performance.now() - ctx.startedAt)));
    });
    next();
  };
}
