import { join } from 'node:path';
import { OperationNames, Operations, type OperationName, type OperationSpec } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { hasBinaryOrSkip, rejectsWith, spawnAgent, tearDown, useNatsBus, useTempDir, type AgentProcess } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
const NODE = 'caps';
const bus = useNatsBus();
const dir = useTempDir('virtbus-caps-');
let agent: AgentProcess | undefined;
let client: VirtClient;

describe.skipIf(!QEMU)('host and domain capabilities (virsh capabilities, domcapabilities, cpu-compare, cpu-baseline)', () => {
  beforeAll(async () => {
    client = new VirtClient(bus.nc);
    agent = await spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(dir.path, 'state'), drivers: 'test,qemu' });
  }, 60_000);
  afterAll(() => tearDown(agent));

  it("describes the host CPU with its flags and every driver's capabilities", async () => {
    const host = await client.call(NODE, 'node.capabilities', {});
    expect(host.cpu.arch).toBe('x86_64');
    expect(host.cpu.flags).toContain('fpu');
    expect(host.drivers.find((driver) => driver.name === 'qemu')?.capabilities).toEqual(expect.arrayContaining(['qemu-monitor', 'domain-capabilities']));
  });

  it('asks QEMU for machine types, CPU models usable under TCG and the expansion of max', async () => {
    const caps = await client.call(NODE, 'node.domcapabilities', { driver: 'qemu' }, { timeoutMs: 30_000 });
    expect(caps).toMatchObject({ driver: 'qemu', accel: 'tcg', firmware: [{ type: 'bios', available: true }, expect.objectContaining({ type: 'efi' })] });
    expect(caps.machines.map((machine) => machine.name)).toEqual(expect.arrayContaining([expect.stringMatching(/^pc-i440fx-/), expect.stringMatching(/^pc-q35-/)]));
    expect(caps.machines.find((machine) => machine.alias === 'pc')).toBeDefined();
    expect(caps.maxVcpus).toBeGreaterThan(1);
    expect(caps.cpuModels.find((model) => model.name === 'qemu64')).toMatchObject({ usable: true });
    expect(caps.hostModel?.name).toBe('max');
    expect(caps.hostModel?.features.length).toBeGreaterThan(10);
    const q35 = await client.call(NODE, 'node.domcapabilities', { driver: 'qemu', machine: 'q35' }, { timeoutMs: 30_000 });
    expect(q35.machine).toMatch(/^pc-q35-/);
    await rejectsWith(client.call(NODE, 'node.domcapabilities', { driver: 'qemu', machine: 'no-such-machine' }, { timeoutMs: 30_000 }), 'OPERATION_UNSUPPORTED');
    await rejectsWith(client.call(NODE, 'node.domcapabilities', { driver: 'test' }), 'OPERATION_UNSUPPORTED');
  }, 60_000);

  it("compares another node's CPU with this one and computes the baseline they share", async () => {
    const { cpu } = await client.call(NODE, 'node.capabilities', {});
    expect(await client.call(NODE, 'node.cpu.compare', { cpu })).toEqual({ result: 'identical', missingFeatures: [] });
    expect(await client.call(NODE, 'node.cpu.compare', { cpu: { ...cpu, flags: cpu.flags.slice(1) } })).toEqual({ result: 'superset', missingFeatures: [] });
    expect(await client.call(NODE, 'node.cpu.compare', { cpu: { ...cpu, flags: [...cpu.flags, 'virtbus_future_flag'] } })).toEqual({ result: 'incompatible', missingFeatures: ['virtbus_future_flag'] });
    const baseline = await client.call(NODE, 'node.cpu.baseline', { cpus: [{ ...cpu, flags: ['fpu', 'virtbus_future_flag'] }] });
    expect(baseline).toEqual({ ...cpu, flags: ['fpu'] });
  });

  it('answers OPERATION_UNSUPPORTED for every operation the contract marks as served by other drivers only, on a test domain', async () => {
    const marked = OperationNames.filter((name) => {
      const spec: OperationSpec = Operations[name];
      return spec.drivers !== undefined && !spec.drivers.includes('test');
    });
    const plain = await client.call(NODE, 'domain.define', { name: 'plain', driver: 'test', vcpus: 1, memory: 64 });
    const id = plain.uuid;
    // one valid request per marked operation: a new marked operation fails here until it has one
    const requests: Partial<Record<OperationName, unknown>> = {
      'domain.xml': { id },
      'domain.import': { domains: ['plain'] },
      'domain.qemu.monitor': { id, monitor: { command: 'query-status' } },
      'domain.lxc.enter': { id, enter: { command: ['true'] } },
      'node.domcapabilities': { driver: 'test' },
    };
    expect(Object.keys(requests).sort()).toEqual([...marked].sort());
    for (const name of marked) await rejectsWith(client.call(NODE, name, requests[name] as never), 'OPERATION_UNSUPPORTED');
  });
});
