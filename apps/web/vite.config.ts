import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The gateway serves the built files at /ui (dist/web); the UI talks to the same origin's public HTTP API only.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/ui/',
  // Preact's JSX runtime without a plugin
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: fileURLToPath(new URL('../../dist/web', import.meta.url)),
    emptyOutDir: true,
    // noVNC uses top-level await
    target: 'es2022',
    sourcemap: true,
    // one bundle (noVNC, xterm.js, uPlot, Preact) served by the gateway, not a public site: ~600 kB is fine
    chunkSizeWarningLimit: 1024,
  },
  logLevel: 'warn',
});
