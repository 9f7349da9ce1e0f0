import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compareSnapshots, type ContractSnapshot } from './compare.js';
import { buildSnapshot } from './snapshot.js';

const COMMITTED = fileURLToPath(new URL('../../libs/api-contract/contract/v1.json', import.meta.url));

const { values } = parseArgs({ options: { update: { type: 'boolean', default: false } }, strict: true });
const current = await buildSnapshot();
const text = `${JSON.stringify(current, null, 2)}\n`;

let committedText: string | undefined;
try {
  committedText = await readFile(COMMITTED, 'utf8');
} catch (error) {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}

if (committedText === undefined) {
  if (!values.update) {
    console.error(`contract: ${COMMITTED} is missing; run npm run contract:update to create it`);
    process.exit(1);
  }
  await writeFile(COMMITTED, text);
  console.log(`contract: wrote ${COMMITTED}`);
  process.exit(0);
}

const problems = compareSnapshots(JSON.parse(committedText) as ContractSnapshot, current);
if (problems.length > 0) {
  console.error(`contract: ${problems.length} incompatible change(s) against ${COMMITTED}:`);
  for (const problem of problems) console.error(`  - ${problem.where}: ${problem.what}`);
  console.error('API v1 allows additive changes only.');
  process.exit(1);
}
if (committedText === text) {
  console.log('contract: unchanged');
} else if (values.update) {
  await writeFile(COMMITTED, text);
  console.log(`contract: compatible additions written to ${COMMITTED}`);
} else {
  // The committed document is the published API: additions pass only once they are committed with it.
  console.error('contract: compatible additions are not in the committed document; run npm run contract:update and commit it');
  process.exit(1);
}
