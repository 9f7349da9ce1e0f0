import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fleetDown, fleetStatus, fleetUp, loadFleetState } from './topology.js';

const USAGE = `virtbus fleet in a box: three hosts and a gateway in network namespaces (root; npm run build first)

  npx tsx tools/fleet/fleet.ts up|down|status [--dir DIR] [--prefix P] [--drivers LIST]

  --dir DIR       certificates, configs, JetStream stores, agent state, logs, sockets (default: ${join(tmpdir(), 'virtbus-fleet')})
  --prefix P      namespace names <P>-sw, <P>-h1…h3, <P>-gw (default: vbfleet)
  --drivers LIST  agent drivers (default: test,qemu)

Then, e.g.: curl --unix-socket DIR/sockets/gateway-http.sock http://fleet/v1/nodes
        or: ip netns exec P-gw curl http://127.0.0.1:8080/v1/domains
`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    dir: { type: 'string', default: join(tmpdir(), 'virtbus-fleet') },
    prefix: { type: 'string', default: 'vbfleet' },
    drivers: { type: 'string', default: 'test,qemu' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
const command = positionals[0];
if (values.help || !['up', 'down', 'status'].includes(command ?? '')) {
  process.stdout.write(USAGE);
  process.exit(values.help ? 0 : 2);
}

const existing = await loadFleetState(values.dir);
if (command === 'up') {
  if (existing) {
    process.stderr.write(`a fleet already runs from ${values.dir} (namespaces ${existing.plan.prefix}-*): fleet down first\n`);
    process.exit(1);
  }
  const state = await fleetUp({ prefix: values.prefix, dir: values.dir, drivers: values.drivers }).catch((error: unknown) => {
    // fleetUp removed what it had made
    process.stderr.write(`fleet up failed: ${(error as Error).message}\n`);
    process.exit(1);
  });
  process.stdout.write(`${(await fleetStatus(state)).join('\n')}\ngateway: curl --unix-socket ${state.plan.gateway.httpSocket} http://fleet/v1/nodes\n`);
} else if (!existing) {
  process.stderr.write(`no fleet runs from ${values.dir}\n`);
  process.exit(command === 'down' ? 0 : 1);
} else if (command === 'down') {
  const left = await fleetDown(existing);
  process.stdout.write(left.length ? `removed; these PIDs still ran after SIGKILL: ${left.join(' ')}\n` : 'removed\n');
  process.exit(left.length ? 1 : 0);
} else {
  process.stdout.write(`${(await fleetStatus(existing)).join('\n')}\n`);
}
