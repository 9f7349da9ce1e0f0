import { randomUUID } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Subjects } from '@virtbus/api-contract';
import { serve, VirtClient } from '@virtbus/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestShell, tearDown, useNatsBus, waitFor } from '../src/index.js';

const NODE = 'shell1';
const UUID = randomUUID();
const output = Subjects.consoleOutput(NODE, UUID);

const bus = useNatsBus();
// the agent's side on its own connection, as a real agent
let agent: NatsConnection;

beforeAll(async () => {
  agent = await connect({ servers: bus.server.url });
  serve(agent, Subjects.request(NODE, 'ro', 'domain.get'), () => Promise.resolve({ uuid: UUID, name: 'chatty', node: NODE, state: 'running' }));
  serve(agent, Subjects.request(NODE, 'rw', 'domain.console.attach'), () => {
    // a guest that keeps printing: one line already in the history, one right after the answer
    agent.publish(output, 'in history\n');
    setImmediate(() => agent.publish(output, 'after attach\n'));
    return Promise.resolve({ session: 's1', subject: output, history: Buffer.from('boot log\nin history\n').toString('base64') });
  });
  serve(agent, Subjects.request(NODE, 'rw', 'domain.console.detach'), () => Promise.resolve({}));
  await agent.flush();
});

afterAll(() => tearDown(agent));

describe('GuestShell.open', () => {
  it('loses no output the agent sends right after its attach answer, and keeps none of the history twice', async () => {
    const shell = await GuestShell.open(new VirtClient(bus.nc), bus.nc, NODE, 'chatty');
    await waitFor('the output after the attach answer', () => shell.text().includes('after attach'), 10_000);
    expect(shell.text()).toBe('boot log\nin history\nafter attach\n');
    await shell.close();
  });
});
