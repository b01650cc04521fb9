/**
 * The routes an express app really serves, read from its router stack, so a test can check that
 * its table of cases covers every route (and notices a route added later).
 *
 *   routesOf(createApp(services)) → [{ method: 'GET', path: '/v1/files/:fileId' }, …]
 */
import type express from 'express';

export interface AppRoute {
  method: string;
  path: string;
}

interface Layer {
  rawPath?: unknown;
  route?: { path: string; methods: Record<string, boolean> };
  handle: { stack?: Layer[] };
}

function walk(stack: Layer[], prefix: string, into: AppRoute[]): void {
  for (const layer of stack) {
    const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
    if (layer.route) {
      const path = `${prefix}${layer.route.path === '/' && prefix ? '' : layer.route.path}`;
      // `_all` is the methodNotAllowed catch-all every route ends with; it serves no resource.
      for (const method of Object.keys(layer.route.methods).filter((name) => name !== '_all')) {
        into.push({ method: method.toUpperCase(), path });
      }
    } else if (layer.handle.stack) {
      walk(layer.handle.stack, `${prefix}${mount}`, into);
    }
  }
}

/** Every (method, path) with a handler, with mount prefixes joined (`/v1/vector_stores/:kbId`). */
export function routesOf(app: express.Express): AppRoute[] {
  const routes: AppRoute[] = [];
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '', routes);
  return routes;
}

export const routeKey = (route: AppRoute): string => `${route.method} ${route.path}`;
