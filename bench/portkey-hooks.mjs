/** Module resolve hook (see portkey-server.mjs): Portkey's build gets portkey-node-server.mjs for @hono/node-server. */
const shim = new URL('./portkey-node-server.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@hono/node-server' && context.parentURL?.includes('/@portkey-ai/gateway/')) {
    return nextResolve(shim, context);
  }
  return nextResolve(specifier, context);
}
