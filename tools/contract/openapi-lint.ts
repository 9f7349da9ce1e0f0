import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const REDOCLY = fileURLToPath(new URL('../../node_modules/.bin/redocly', import.meta.url));
const LINT_TIMEOUT_MS = 120_000;

export interface LintProblem {
  ruleId: string;
  severity: 'error' | 'warn';
  message: string;
  location?: { pointer?: string }[];
}
export interface LintReport {
  totals: { errors: number; warnings: number; ignored: number };
  problems: LintProblem[];
}

/** Lints an OpenAPI document with Redocly's recommended rules (the local CLI; no telemetry, no update check). */
export async function lintOpenApi(document: unknown): Promise<LintReport> {
  const dir = await mkdtemp(join(tmpdir(), 'virtbus-openapi-'));
  try {
    const file = join(dir, 'openapi.json');
    await writeFile(file, JSON.stringify(document));
    const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };
    // lint exits 1 when it finds errors; the JSON report on stdout is the answer either way
    const stdout = await promisify(execFile)(REDOCLY, ['lint', file, '--extends=recommended', '--format=json'], { env, timeout: LINT_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 })
      .then((result) => result.stdout)
      .catch((error: { stdout?: string }) => {
        if (!error.stdout) throw error;
        return error.stdout;
      });
    return JSON.parse(stdout) as LintReport;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `npm run lint:openapi`: the gateway's document, built in-process, must lint without errors. */
async function main(): Promise<void> {
  const { buildApp } = await import('@virtbus/gateway');
  const app = await buildApp({
    nc: () => {
      throw new Error('the OpenAPI document needs no NATS');
    },
    logger: false,
  });
  await app.ready();
  const report = await lintOpenApi(app.swagger());
  await app.close();
  for (const problem of report.problems) console.log(`${problem.severity} ${problem.ruleId}: ${problem.message} (${problem.location?.[0]?.pointer ?? ''})`);
  console.log(`openapi lint: ${report.totals.errors} errors, ${report.totals.warnings} warnings`);
  if (report.totals.errors > 0) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
