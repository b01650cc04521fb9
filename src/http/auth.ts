import type { RequestHandler } from 'express';
import { AuthenticationError } from '../errors.ts';
import type { ApiKeyStore } from '../store/api-keys.ts';
import { context } from './context.ts';

/** Bearer-token authentication: every /v1 route runs as the key's project. */
export function authenticate(keys: ApiKeyStore): RequestHandler {
  return async (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      throw new AuthenticationError(
        "You didn't provide an API key. Send it in the Authorization header as 'Bearer sk-cairn-…'.",
      );
    }
    const caller = await keys.authenticate(match[1]!);
    if (!caller) throw new AuthenticationError();
    context(res).caller = caller;
    next();
  };
}
