import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** dist/ of the checkout: what `npm run build` makes and `install.mjs` installs. */
export const DIST_DIR = fileURLToPath(new URL('../../../dist/', import.meta.url));

export type BuiltBundle = 'virtbus' | 'virtbus-agent' | 'virtbus-gateway' | 'install';

/** Path of a built bundle, so tests and tools run what ships; fails clearly when nothing was built. */
export function builtBundle(name: BuiltBundle): string {
  // the CLI is CommonJS: it starts faster (tools/build)
  const path = `${DIST_DIR}${name}${name === 'virtbus' ? '.cjs' : '.mjs'}`;
  if (!existsSync(path)) throw new Error(`${path} is missing: run npm run build (npm test and vitest's global setup do)`);
  return path;
}
