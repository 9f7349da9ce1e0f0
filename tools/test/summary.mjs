// Prints vitest's skip list (each skip names its reason in its title) and one plain closing line
// ("tests: N passed, N failed, N skipped") for CI to read.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const file = process.argv[2] ?? '.vitest-results.json';
try {
  const report = JSON.parse(readFileSync(file, 'utf8'));
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  const skips = [];
  const failures = [];
  for (const suite of report.testResults ?? []) {
    for (const test of suite.assertionResults ?? []) {
      const where = `${relative(process.cwd(), suite.name)} › ${test.fullName ?? test.title}`;
      if (test.status === 'pending' || test.status === 'skipped' || test.status === 'todo') skips.push(where);
      if (test.status === 'failed') failures.push(where);
    }
  }
  if (skips.length > 0) console.log(`skipped tests (${skips.length}):\n${skips.map((s) => `  - ${s}`).join('\n')}`);
  else console.log('skipped tests: none');
  if (failures.length > 0) console.log(`failed tests (${failures.length}):\n${failures.map((s) => `  - ${s}`).join('\n')}`);
  console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`);
} catch (error) {
  console.log(`tests: no results in ${file} (${error.message})`);
  process.exitCode = 1;
}
