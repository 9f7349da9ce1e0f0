import type { FastifyPluginAsync, FastifyPluginOptions } from 'fastify';

/** Marks a plugin so its decorators and hooks apply to the parent scope (what fastify-plugin does). */
export function shared<O extends FastifyPluginOptions>(plugin: FastifyPluginAsync<O>): FastifyPluginAsync<O> {
  (plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
  return plugin;
}
