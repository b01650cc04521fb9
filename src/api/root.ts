/**
 * GET / — a signpost for someone who opens the server's address in a browser or with curl:
 * where the API, its description and the docs are. A placeholder the web console will replace.
 */
import { Router } from 'express';

export const ROOT_SIGNPOST = {
  object: 'cairn',
  message: 'Cairn is running: an OpenAI-compatible API under /v1 (send "Authorization: Bearer <key>").',
  api: '/v1',
  openapi: '/openapi.json',
  health: '/healthz',
  docs: 'README.md and docs/api.md in the Cairn repository',
} as const;

export function rootRouter(): Router {
  const router = Router();
  router.get('/', (_req, res) => {
    res.json(ROOT_SIGNPOST);
  });
  return router;
}
