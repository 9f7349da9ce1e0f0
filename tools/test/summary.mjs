// Prints vitest's skip list (each skip names its reason in its title) and one plain closing line
// ("tests: N passed, N failed, N skipped") for CI to read. Tests of a file whose set-up failed count as failed.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const file = process.argv[2] ?? '.vitest-results.json';
try {
  const report = JSON.parse(readFileSync(file, 'utf8'));
  const skips = [];
  const failures = [];
  let passed = 0;
  for (const suite of report.testResults ?? []) {
    const suiteFailed = suite.status === 'failed';
    const suiteName = relative(process.cwd(), suite.name);
    if (suiteFailed && (suite.assertionResults ?? []).length === 0) failures.push(`${suiteName} (the file failed: ${String(suite.message ?? '').split('\n')[0]})`);
    for (const test of suite.assertionResults ?? []) {
      const where = `${suiteName} › ${test.fullName ?? test.title}`;
      const skipped = test.status === 'pending' || test.status === 'skipped' || test.status === 'todo';
      if (test.status === 'passed') passed += 1;
      else if (test.status === 'failed') failures.push(where);
      // a skip inside a file whose beforeAll failed is a failure, not a skip
      else if (skipped && suiteFailed) failures.push(`${where} (not run: ${String(suite.message ?? 'set-up failed').split('\n')[0]})`);
      else if (skipped) skips.push(where);
    }
  }
  if (skips.length > 0) console.log(`skipped tests (${skips.length}):\n${skips.map((s) => `  - ${s}`).join('\n')}`);
  else console.log('skipped tests: none');
  if (failures.length > 0) console.log(`failed tests (${failures.length}):\n${failures.map((s) => `  - ${s}`).join('\n')}`);
  console.log(`tests: ${passed} passed, ${failures.length} failed, ${skips.length} skipped`);
  if (failures.length > 0 && process.exitCode === undefined) process.exitCode = 1;
} catch (error) {
  console.log(`tests: no results in ${file} (${error.message})`);
  process.exitCode = 1;
}
