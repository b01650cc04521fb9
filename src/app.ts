/** createApp(services) → the express app: middleware order and route mounting, nothing else. */
import express, { Router } from 'express';
import { chatRouter } from './api/chat.ts';
import { completionsRouter } from './api/completions.ts';
import { embeddingsRouter } from './api/embeddings.ts';
import { filesRouter } from './api/files.ts';
import { KNOWLEDGE_BASE_FLAVOR, VECTOR_STORE_FLAVOR } from './api/knowledge-base-objects.ts';
import { knowledgeBasesRouter } from './api/knowledge-bases.ts';
import { modelsRouter } from './api/models.ts';
import { openApiRouter } from './api/openapi.ts';
import { operationsRouter } from './api/operations.ts';
import { rootRouter } from './api/root.ts';
import { usageRouter } from './api/usage.ts';
import { accessLog } from './http/access-log.ts';
import { authenticate } from './http/auth.ts';
import { errorHandler, notFound } from './http/error-handler.ts';
import { jsonBody } from './http/json-body.ts';
import { rateLimit } from './http/rate-limit.ts';
import { requestId } from './http/request-id.ts';
import { EXTRACTIVE_MODEL } from './models/extractive-model.ts';
import type { Services } from './services.ts';

export function createApp(services: Services): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.use(requestId());
  app.use(accessLog(services.logger, services.metrics, services.usage));
  app.use(operationsRouter(services.readiness, services.metrics.registry, services.logger));
  app.use(openApiRouter());
  app.use(rootRouter());

  const v1 = Router();
  v1.use(authenticate(services.keys));
  v1.use(jsonBody(services.config.bodyLimitBytes));
  v1.use(rateLimit(services.rateLimiter, services.config.limits));
  v1.use(chatRouter(services.modelRouter, services.groundedChat));
  v1.use(completionsRouter(services.modelRouter));
  v1.use(embeddingsRouter(services.embeddings));
  const startedAt = Math.floor(Date.now() / 1000);
  const builtIn = [EXTRACTIVE_MODEL, ...services.embeddings.ids()].map((id) => ({ id, object: 'model' as const, created: startedAt, owned_by: 'cairn' }));
  v1.use(modelsRouter(() => [...services.modelRegistry.list(), ...builtIn], (id) => services.embeddings.unavailable(id)));
  v1.use(usageRouter(services.usage));
  v1.use(filesRouter(services.files, services.blobs, services.config.maxUploadBytes));
  v1.use('/knowledge_bases', knowledgeBasesRouter(services.knowledgeBases, services.retriever, KNOWLEDGE_BASE_FLAVOR));
  v1.use('/vector_stores', knowledgeBasesRouter(services.knowledgeBases, services.retriever, VECTOR_STORE_FLAVOR));
  app.use('/v1', v1);

  app.use(notFound());
  app.use(errorHandler(services.logger));
  return app;
}
