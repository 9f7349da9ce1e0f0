import { parseArgs } from 'node:util';
import { startSimulatedFleet } from './fleet.js';

const { values } = parseArgs({
  options: { nats: { type: 'string', default: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222' }, nodes: { type: 'string', default: '1000' }, domains: { type: 'string', default: '0' }, prefix: { type: 'string', default: 'sim-' } },
  strict: true,
});
const count = Number(values.nodes);
if (!Number.isInteger(count) || count < 1 || count > 100_000) {
  process.stderr.write(`virtbus sim: --nodes must be an integer from 1 to 100000\n`);
  process.exit(2);
}
const domains = Number(values.domains);
if (!Number.isInteger(domains) || domains < 0 || domains > 10_000) {
  process.stderr.write(`virtbus sim: --domains must be an integer from 0 to 10000\n`);
  process.exit(2);
}
const fleet = await startSimulatedFleet({ nats: { servers: values.nats.split(',') }, nodes: count, prefix: values.prefix, domainsPerNode: domains });
process.stdout.write(`simulating ${fleet.names.length} nodes with ${domains} domains each (${fleet.names[0]} … ${fleet.names.at(-1)}); ready\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void fleet.close().then(() => process.exit(0)));
