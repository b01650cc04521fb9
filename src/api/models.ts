/** GET /v1/models and GET /v1/models/{id}. */
import { Router } from 'express';
import { NotFoundError } from '../errors.ts';
import { methodNotAllowed } from '../http/error-handler.ts';
import type { ModelListing } from '../models/model-registry.ts';

export function modelsRouter(listModels: () => ModelListing[]): Router {
  const router = Router();
  router
    .route('/models')
    .get((_req, res) => {
      res.json({ object: 'list', data: listModels() });
    })
    .all(methodNotAllowed(['GET']));
  router
    .route('/models/:id')
    .get((req, res) => {
      const model = listModels().find((entry) => entry.id === req.params.id);
      if (!model) {
        throw new NotFoundError(`The model '${req.params.id}' does not exist`, { param: 'model', code: 'model_not_found' });
      }
      res.json(model);
    })
    .all(methodNotAllowed(['GET']));
  return router;
}
