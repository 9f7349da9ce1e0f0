import { buildAll, isStale } from './build.js';

/** Integration tests spawn the built bundles: rebuild dist/ first when any source of it changed. */
export default async function setup(): Promise<void> {
  if (await isStale()) await buildAll();
}
