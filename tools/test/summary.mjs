// Prints vitest's totals as one plain closing line ("tests: N passed, N failed, N skipped") for CI to read.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? '.vitest-results.json';
try {
  const report = JSON.parse(readFileSync(file, 'utf8'));
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`);
} catch (error) {
  console.log(`tests: no results in ${file} (${error.message})`);
  process.exitCode = 1;
}
