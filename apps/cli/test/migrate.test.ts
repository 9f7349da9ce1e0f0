import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliStack, type CliStack } from './support/stack.js';

let stack: CliStack;
let gatewayUrl: string;
const cli = (...args: string[]) => stack.cli(...args);

beforeAll(async () => {
  stack = await startCliStack({ nodes: ['ma', 'mb'] });
  gatewayUrl = stack.gatewayUrl;
});

afterAll(async () => {
  await stack?.close();
});

describe('virtbus migrate through the gateway (test driver: offline only)', () => {
  it('moves a definition offline and undefines the source', async () => {
    expect((await cli('--node', 'ma', 'define', '--name', 'wanderer', '--driver', 'test')).code).toBe(0);
    const moved = await cli('--node', 'ma', 'migrate', 'wanderer', 'mb', '--offline', '--undefine-source');
    expect(moved.code).toBe(0);
    expect(moved.text).toBe("Domain 'wanderer' migrated from ma to mb");
    expect((await cli('--node', 'mb', 'list', '--all')).text).toMatch(/wanderer\s+shutoff\s+test/);
    expect((await cli('--node', 'ma', 'list', '--all')).text).not.toContain('wanderer');
  });

  it('refuses a live migration the driver cannot do, and a second copy on the destination', async () => {
    await cli('--node', 'mb', 'start', 'wanderer');
    const response = await fetch(`${gatewayUrl}/v1/nodes/mb/domains/wanderer/migrate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ destination: 'ma' }),
    });
    expect(response.status).toBe(501);
    expect(((await response.json()) as { code: string }).code).toBe('OPERATION_UNSUPPORTED');
    expect((await cli('--node', 'ma', 'define', '--name', 'wanderer', '--driver', 'test')).code).toBe(0);
    const again = await fetch(`${gatewayUrl}/v1/nodes/mb/domains/wanderer/migrate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ destination: 'ma', offline: true }),
    });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { message: string }).message).toMatch(/another domain named wanderer/);
  });
});
