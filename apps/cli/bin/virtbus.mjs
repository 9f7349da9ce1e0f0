#!/usr/bin/env node
// Runs the built CLI bundle (npm run build); it needs nothing from the checkout at run time.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const bundle = fileURLToPath(new URL('../../../dist/virtbus.cjs', import.meta.url));
if (!existsSync(bundle)) {
  process.stderr.write(`virtbus: ${bundle} is missing; run npm run build first\n`);
  process.exit(2);
}
createRequire(import.meta.url)(bundle);
