import { defineConfig } from 'vitest/config';

// Unit specs sit beside the code; integration tests (real nats-server, QEMU, LXC) live under each project's test/.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['apps/*/src/**/*.spec.ts', 'libs/*/src/**/*.spec.ts', 'tools/**/*.spec.ts'],
          exclude: ['**/node_modules/**'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          // processes the tests start run dist/ (what ships), rebuilt here when stale
          globalSetup: ['tools/build/global-setup.ts'],
          include: ['apps/*/test/**/*.test.ts', 'libs/*/test/**/*.test.ts', 'tools/**/test/**/*.test.ts'],
          exclude: ['**/node_modules/**'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
