import { main } from './main.js';

// no top-level await: the built CLI is CommonJS (tools/build/build.ts)
void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
