import { randomBytes } from 'node:crypto';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { ConsoleHeaders, Subjects, VirtError } from '@virtbus/api-contract';
import type { ConsoleCapability, ConsoleSession, DomainRecord, HypervisorDriver } from '@virtbus/drivers';
import type { Logger } from 'pino';

const HISTORY_LIMIT = 1024 * 1024;

/** Tells the readers of a relay subject its session is over and why (a message with the End header and no bytes). */
export function publishEnd(nc: NatsConnection, subject: string, why: string): void {
  const headers = natsHeaders();
  headers.set(ConsoleHeaders.End, why);
  nc.publish(subject, new Uint8Array(0), { headers });
}

/** Consoles (serial or graphical) exist only while the domain's process runs. */
/** A driver without consoles answers OPERATION_UNSUPPORTED for every console call (before any session lookup). */
export function consoleOf(driver: HypervisorDriver, domain?: DomainRecord): ConsoleCapability {
  if (!driver.console) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver has no console`);
  if (domain) requireRunning(domain, 'console');
  return driver.console;
}

export function requireRunning(domain: DomainRecord, what: string): void {
  if (domain.state !== 'running' && domain.state !== 'paused' && domain.state !== 'blocked') {
    throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} is ${domain.state}: no ${what}`);
  }
}

interface DomainConsole {
  session: ConsoleSession;
  history: Buffer;
  subject: string;
  writer: string | undefined;
}

export interface ConsoleAttachment {
  session: string;
  history: string;
  subject: string;
}

/**
 * Bridges each running domain's console onto the bus: one driver session per domain, live output
 * published on a core subject, and at most one writer session at a time (taken over only by force).
 */
export class ConsoleHub {
  private readonly consoles = new Map<string, DomainConsole>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly node: string,
    private readonly logger: Logger,
  ) {}

  async read(domain: DomainRecord, driver: HypervisorDriver): Promise<ConsoleAttachment> {
    const console = await this.open(domain, driver);
    return { session: '', history: console.history.toString('base64'), subject: console.subject };
  }

  async attach(domain: DomainRecord, driver: HypervisorDriver, force: boolean): Promise<ConsoleAttachment> {
    const console = await this.open(domain, driver);
    if (console.writer && !force) {
      throw new VirtError('OPERATION_INVALID', `console of ${domain.config.name} already has a writer; attach with force to take it`);
    }
    console.writer = randomBytes(12).toString('hex');
    return { session: console.writer, history: console.history.toString('base64'), subject: console.subject };
  }

  write(domain: DomainRecord, session: string, data: Buffer): void {
    const console = this.consoles.get(domain.config.uuid);
    if (!console || console.writer !== session) {
      throw new VirtError('OPERATION_INVALID', `session ${session} is not the console writer of ${domain.config.name}`);
    }
    console.session.write(data);
  }

  detach(domain: DomainRecord, session: string): void {
    const console = this.consoles.get(domain.config.uuid);
    if (console?.writer === session) console.writer = undefined;
  }

  /**
   * The domain stopped: its console session ends with it, and readers are told why (published even when the driver's
   * session already closed on its own, as the test driver's and a QEMU that exited do before the event).
   */
  forget(uuid: string, why?: string): void {
    if (why !== undefined) publishEnd(this.nc, Subjects.consoleOutput(this.node, uuid), why);
    const console = this.consoles.get(uuid);
    if (!console) return;
    this.consoles.delete(uuid);
    console.session.close();
  }

  /** The agent stops: sessions close, the domains (and their consoles) live on for the next agent. */
  closeAll(): void {
    for (const uuid of [...this.consoles.keys()]) this.forget(uuid);
  }

  private async open(domain: DomainRecord, driver: HypervisorDriver): Promise<DomainConsole> {
    const existing = this.consoles.get(domain.config.uuid);
    if (existing) return existing;
    const session = await consoleOf(driver, domain).openConsole(domain);
    const subject = Subjects.consoleOutput(this.node, domain.config.uuid);
    const console: DomainConsole = { session, history: session.history, subject, writer: undefined };
    session.onData((chunk) => {
      const history = Buffer.concat([console.history, chunk]);
      console.history = history.length > HISTORY_LIMIT ? history.subarray(history.length - HISTORY_LIMIT) : history;
      this.nc.publish(subject, chunk);
    });
    session.onClose(() => {
      if (this.consoles.get(domain.config.uuid) === console) this.consoles.delete(domain.config.uuid);
    });
    this.consoles.set(domain.config.uuid, console);
    this.logger.debug({ domain: domain.config.name }, 'console bridged to the bus');
    return console;
  }
}
