import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import nx from '@nx/eslint-plugin';
import prettier from 'eslint-config-prettier';

/** Which project may import which (Nx tags); the gateway never reaches the drivers. */
const depConstraints = [
  { sourceTag: 'scope:contract', onlyDependOnLibsWithTags: [], allowedExternalImports: ['typebox', 'typebox/*', 'node:*', 'vitest'] },
  { sourceTag: 'scope:monitoring', onlyDependOnLibsWithTags: ['scope:contract', 'scope:testing'] },
  { sourceTag: 'scope:testing', onlyDependOnLibsWithTags: ['scope:contract', 'scope:client'] },
  { sourceTag: 'scope:client', onlyDependOnLibsWithTags: ['scope:contract'] },
  { sourceTag: 'scope:security', onlyDependOnLibsWithTags: ['scope:contract', 'scope:testing'] },
  { sourceTag: 'scope:drivers', onlyDependOnLibsWithTags: ['scope:contract', 'scope:monitoring', 'scope:testing'] },
  { sourceTag: 'scope:agent', onlyDependOnLibsWithTags: ['scope:contract', 'scope:client', 'scope:drivers', 'scope:monitoring', 'scope:security', 'scope:testing'] },
  { sourceTag: 'scope:gateway', onlyDependOnLibsWithTags: ['scope:contract', 'scope:client', 'scope:monitoring', 'scope:security', 'scope:testing'] },
  { sourceTag: 'scope:cli', onlyDependOnLibsWithTags: ['scope:contract', 'scope:testing'] },
  // the web UI is a client of the public HTTP API only: the contract's types (type-only imports, see below), no runtime code
  { sourceTag: 'scope:web', onlyDependOnLibsWithTags: ['scope:contract'] },
  { sourceTag: 'scope:tools', onlyDependOnLibsWithTags: ['*'] },
];

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', 'tools/.cache/**', 'bench-results/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', URL: 'readonly', console: 'readonly' } },
  },
  {
    files: ['**/*.ts', '**/*.tsx'],
    plugins: { '@nx': nx },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': ['error', { selector: 'TSEnumDeclaration', message: 'Use a const object instead of a TS enum.' }],
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: [],
          depConstraints,
        },
      ],
    },
  },
  {
    // QMP in layers like libvirt: outside libs/drivers/src/qemu/qmp only the typed command groups (qmp/index.ts) are reachable.
    files: ['libs/drivers/**/*.ts'],
    ignores: ['libs/drivers/src/qemu/qmp/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: 'qmp/(monitor|qmp|commands/.*)\\.js$', message: 'Use the typed commands from qemu/qmp/index.js; the monitor is private to qemu/qmp.' }] },
      ],
    },
  },
  {
    // The web UI checks its calls against the contract's types, but bundles no workspace code: type-only imports of the contract, nothing else.
    files: ['apps/web/**/*.ts', 'apps/web/**/*.tsx'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [{ name: '@virtbus/api-contract', allowTypeImports: true, message: 'The web UI bundles no workspace code: import the contract\'s types only (import type).' }],
          patterns: [{ regex: '^@virtbus/(?!api-contract$)', message: 'The web UI is a client of the public HTTP API only: no workspace library.' }],
        },
      ],
    },
  },
  {
    // Integration tests and tools run one app beside another (a gateway for the CLI, a dev stack); products never do.
    files: ['apps/*/test/**/*.ts', 'tools/**/*.ts'],
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: ['@virtbus/agent', '@virtbus/gateway'],
          depConstraints,
        },
      ],
    },
  },
  {
    // Library integration tests may use the client's helpers (waiting for a JetStream cluster to form), like app tests.
    files: ['libs/*/test/**/*.ts'],
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: ['@virtbus/client'],
          depConstraints,
        },
      ],
    },
  },
);
