/** GET /v1/models and GET /v1/models/{id}. */
import { Router } from 'express';
import { ApiError, NotFoundError, ServiceUnavailableError } from '../errors.ts';
import { methodNotAllowed } from '../http/error-handler.ts';
import type { ModelListing } from '../models/model-registry.ts';

/**
 * `unavailable(id)` tells which models are known not to serve (a local model whose weights failed
 * to load): the list leaves them out, so clients do not pick them, and retrieving one answers why.
 */
export function modelsRouter(listModels: () => ModelListing[], unavailable: (id: string) => Error | undefined = () => undefined): Router {
  const router = Router();
  router
    .route('/models')
    .get((_req, res) => {
      res.json({ object: 'list', data: listModels().filter((model) => !unavailable(model.id)) });
    })
    .all(methodNotAllowed(['GET']));
  router
    .route('/models/:id')
    .get((req, res) => {
      const model = listModels().find((entry) => entry.id === req.params.id);
      const failure = model && unavailable(model.id);
      if (failure) throw failure instanceof ApiError ? failure : new ServiceUnavailableError(`The model '${model.id}' cannot serve: ${failure.message}`);
      if (!model) {
        throw new NotFoundError(`The model '${req.params.id}' does not exist`, { param: 'model', code: 'model_not_found' });
      }
      res.json(model);
    })
    .all(methodNotAllowed(['GET']));
  return router;
}
