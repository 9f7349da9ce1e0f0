import { setTimeout as sleep } from 'node:timers/promises';
import type { FleetDomain } from '@virtbus/api-contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliStack, type CliStack } from './support/stack.js';

let stack: CliStack;

/** `virtbus list --fleet --json …` until `check` holds (the gateway's index follows events); fails after the deadline. */
async function fleetUntil(args: string[], check: (domains: FleetDomain[]) => boolean): Promise<FleetDomain[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const result = await stack.cli('--json', 'list', '--fleet', ...args);
    expect(result.code, result.text).toBe(0);
    const { domains } = JSON.parse(result.text) as { domains: FleetDomain[] };
    if (check(domains)) return domains;
    if (Date.now() > deadline) throw new Error(`list --fleet ${args.join(' ')} never matched: ${result.text}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  stack = await startCliStack({ nodes: ['a', 'b'] });
  for (const node of ['a', 'b']) {
    for (const [name, tier] of [['web', 'front'], ['db', 'back'], ['cache', 'back']]) {
      const defined = await stack.cli('--node', node, 'define', '--name', name!, '--driver', 'test', '--label', `tier=${tier}`);
      expect(defined.code, defined.text).toBe(0);
    }
  }
});

afterAll(async () => {
  await stack?.close();
});

describe('virtbus list --fleet', () => {
  it('lists the domains of every node without --node, with filters, and a node column in the table', async () => {
    const all = await fleetUntil(['--all'], (domains) => domains.length === 6);
    expect(all.map((d) => `${d.node}/${d.name}`)).toEqual(['a/cache', 'a/db', 'a/web', 'b/cache', 'b/db', 'b/web']);
    expect((await fleetUntil(['--selector', 'tier=back'], () => true)).length).toBe(0); // shut off: hidden without --all
    expect((await fleetUntil(['--all', '--selector', 'tier=back', '--prefix', 'c'], () => true)).map((d) => d.node)).toEqual(['a', 'b']);

    expect((await stack.cli('--node', 'b', 'start', 'web')).code).toBe(0);
    expect((await fleetUntil([], (domains) => domains.length === 1)).map((d) => `${d.node}/${d.name}/${d.state}`)).toEqual(['b/web/running']);
    const table = await stack.cli('list', '--fleet');
    expect(table.text).toMatch(/Node\s+Name\s+State/);
    expect(table.text).toMatch(/b\s+web\s+running/);
  });
});
