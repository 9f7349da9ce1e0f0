import { setTimeout as sleep } from 'node:timers/promises';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { Subjects } from '@virtbus/api-contract';
import { alreadyInHistory, type VirtClient } from '@virtbus/client';
import { waitFor } from './wait.js';

/** The test guest's busybox shell on the serial console, driven through the agent's console API over NATS. */
export class GuestShell {
  private output = '';
  private counter = 0;
  private subscription?: Subscription;
  private constructor(
    private readonly client: VirtClient,
    private readonly node: string,
    private readonly id: string,
    private readonly session: string,
  ) {}

  static async open(client: VirtClient, nc: NatsConnection, node: string, id: string): Promise<GuestShell> {
    // subscribed before the attach, so output sent right after its answer is not lost; what came before the answer is held
    const ahead = Subjects.consoleOutput(node, (await client.call(node, 'domain.get', { id })).uuid);
    let early: Msg[] = [];
    let deliver = (msg: Msg): void => void early.push(msg);
    const subscribe = (subject: string): Subscription => nc.subscribe(subject, { callback: (_error, msg) => deliver(msg) });
    let subscription = subscribe(ahead);
    await nc.flush();
    const attached = await client.call(node, 'domain.console.attach', { id }).catch((error: unknown) => {
      subscription.unsubscribe();
      throw error;
    });
    const shell = new GuestShell(client, node, id, attached.session);
    if (attached.subject !== ahead) {
      subscription.unsubscribe();
      early = [];
      subscription = subscribe(attached.subject);
      await nc.flush();
    }
    shell.subscription = subscription;
    const history = Buffer.from(attached.history, 'base64');
    shell.append(history.toString('utf8'));
    // the held part the history ends with was in it already
    for (const msg of early.slice(alreadyInHistory(history, early))) shell.append(Buffer.from(msg.data).toString('utf8'));
    deliver = (msg) => shell.append(Buffer.from(msg.data).toString('utf8'));
    return shell;
  }

  append(text: string): void {
    this.output += text;
  }

  text(): string {
    return this.output;
  }

  /** Runs a command and returns what it printed; the markers are computed by the shell so the echoed input never matches. */
  async run(command: string, timeoutMs = 20_000): Promise<string> {
    const n = ++this.counter;
    const pattern = new RegExp(`S${1000 + n}\\r?\\n([\\s\\S]*?)E${1000 + n}`);
    const keys = `echo S$((1000+${n})); ${command}; echo E$((1000+${n}))\n`;
    await this.client.call(this.node, 'domain.console.write', { id: this.id, session: this.session, data: Buffer.from(keys).toString('base64') });
    await waitFor(`output of ${command}`, () => pattern.test(this.output), timeoutMs);
    return pattern.exec(this.output)![1]!.replace(/\r/g, '').trim();
  }

  /** Types a command without waiting for it (one that never returns, or stops the guest). */
  async type(command: string): Promise<void> {
    await this.client.call(this.node, 'domain.console.write', { id: this.id, session: this.session, data: Buffer.from(`${command}\n`).toString('base64') });
  }

  /** Polls a command until its output satisfies `accept`. */
  async until(command: string, accept: (output: string) => boolean, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const output = await this.run(command);
      if (accept(output)) return output;
      if (Date.now() > deadline) throw new Error(`${command} kept printing ${JSON.stringify(output)}`);
      await sleep(200);
    }
  }

  async close(): Promise<void> {
    this.subscription?.unsubscribe();
    await this.client.call(this.node, 'domain.console.detach', { id: this.id, session: this.session }).catch(() => undefined);
  }
}
