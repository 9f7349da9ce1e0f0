import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { VirtError } from '@virtbus/api-contract';

export interface UiRouteOptions {
  /** The built web UI (dist/web); absent or missing: /ui answers 404 saying so. */
  dir?: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

/** The web UI's files: public (the page is no secret, every API call it makes carries the caller's token). */
export const uiRoutes: FastifyPluginAsync<UiRouteOptions> = async (app, options) => {
  const root = options.dir === undefined ? undefined : resolve(options.dir);

  const file = async (relative: string): Promise<string | undefined> => {
    if (!root) return undefined;
    const path = resolve(join(root, relative));
    if (path !== root && !path.startsWith(root + sep)) return undefined;
    const info = await stat(path).catch(() => undefined);
    return info?.isFile() ? path : undefined;
  };

  app.get('/ui', { config: { auth: false }, schema: { hide: true } }, async (_request, reply) => reply.redirect('/ui/'));
  app.get('/ui/*', { config: { auth: false }, schema: { hide: true } }, async (request, reply) => {
    const wanted = decodeURIComponent((request.params as { '*': string })['*'] || 'index.html');
    // hashed assets are served as they are; any other path is a page of the single-page app
    const path = (await file(wanted)) ?? (wanted.startsWith('assets/') ? undefined : await file('index.html'));
    if (!path) throw new VirtError('NOT_FOUND', root ? `no such UI file: ${wanted}` : 'the web UI is not built here (npm run build makes dist/web)');
    reply.header('content-type', CONTENT_TYPES[extname(path)] ?? 'application/octet-stream');
    reply.header('cache-control', path.includes(`${sep}assets${sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
    reply.header('x-content-type-options', 'nosniff');
    return reply.send(createReadStream(path));
  });
};
