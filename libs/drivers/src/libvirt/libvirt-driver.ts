import { setTimeout as sleep } from 'node:timers/promises';
import { vmOnlyFields } from '../qemu/machine.js';
import { DomainStates, StateReasons, VirtError, type DomainConfig, type DomainState, type DomainStats, type DriverInfo, type StateReason } from '@virtbus/api-contract';
import type { DomainRecord, DriverContext, HypervisorDriver, RunState, StartOptions, StatsCapability, WaitOptions } from '../driver.js';
import { driverCapabilities } from '../driver.js';
import { LibvirtClient, parseLibvirtUri } from './client.js';
import { LibvirtRemoteError } from './errors.js';
import { uuidBytes, type DomainRef } from './protocol.js';

export interface LibvirtDriverOptions {
  /** libvirt URI of the host's libvirtd (`qemu:///system`, `xen:///system`, `test:///default`, `qemu+unix:///system?socket=…`). */
  uri: string;
  callTimeoutMs?: number;
}

/** VIR_DOMAIN_START_PAUSED */
const START_PAUSED = 1;
const POLL_MS = 100;
/** Reconnect backoff after libvirtd went away (a restart keeps its domains running). */
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 10_000;
const VIR_ERR_INVALID_ARG = 8;

const escapeXml = (text: string) => text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** libvirt's (state, reason) numbers to virtbus' names: both follow virDomainState and its per-state reason enums. */
export function runStateOf(state: number, reason: number): RunState {
  const name: DomainState = DomainStates[state] ?? 'nostate';
  const reasons: readonly StateReason[] = StateReasons[name];
  return { state: name, reason: reasons[reason] ?? 'unknown' };
}

/** virtbus' config as domain XML for libvirt's define (what this driver supports so far: name, uuid, memory, vCPUs). */
export function renderDomainXml(config: DomainConfig, hypervisor: string): string {
  return (
    `<domain type='${escapeXml(hypervisor)}'><name>${escapeXml(config.name)}</name><uuid>${config.uuid}</uuid>` +
    `<memory unit='MiB'>${config.memory}</memory><vcpu>${config.vcpus}</vcpu><os><type>hvm</type></os></domain>`
  );
}

/**
 * Fronts a host's libvirtd over its remote protocol: the agent owns the definition and defines it into libvirt on
 * every start; libvirt runs the domain with whatever hypervisor the URI names. Lifecycle only so far (issue 21).
 */
export class LibvirtDriver implements HypervisorDriver, StatsCapability {
  readonly name = 'libvirt';
  readonly domainTypes = ['libvirt'] as const;
  readonly stats: StatsCapability = this;
  private client: LibvirtClient | undefined;
  private connectError: Error | undefined;
  /** libvirt's driver type lower-cased (`qemu`, `xen`, `vz`, `test`, …), the domain XML's type. */
  private hypervisor = 'unknown';
  private detail = '';
  private logger: DriverContext['logger'] | undefined;
  private closing = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = RETRY_MIN_MS;

  constructor(private readonly options: LibvirtDriverOptions) {}

  async init(context: DriverContext): Promise<void> {
    this.logger = context.logger;
    await this.connect();
  }

  /** One attempt; on failure (or a later drop) retries with a bounded backoff until close(). */
  private async connect(): Promise<void> {
    const { socket, uri } = parseLibvirtUri(this.options.uri);
    try {
      const client = await LibvirtClient.connect({ socket, uri, callTimeoutMs: this.options.callTimeoutMs });
      const [{ type }, { hvVer }] = [await client.call('connectGetType', undefined), await client.call('connectGetVersion', undefined)];
      this.hypervisor = type.toLowerCase();
      this.detail = `${uri} on ${socket}: ${type} ${hvVer}`;
      if (this.closing) {
        await client.close();
        return;
      }
      this.client = client;
      this.retryMs = RETRY_MIN_MS;
      client.onClosed((error) => {
        this.connectError = error;
        if (this.closing) return;
        this.logger?.warn({ err: error }, 'libvirtd connection lost; reconnecting');
        this.scheduleReconnect();
      });
    } catch (error) {
      this.connectError = error as Error;
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.closing || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closing) void this.connect();
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  async probe(): Promise<DriverInfo> {
    const available = this.client !== undefined && !this.client.closed;
    return {
      name: this.name,
      domainTypes: [...this.domainTypes],
      available,
      detail: available ? this.detail : `libvirtd unreachable: ${this.connectError?.message ?? 'connection closed'}`,
      capabilities: driverCapabilities(this, [`hypervisor:${this.hypervisor}`]),
    };
  }

  validate(config: DomainConfig): void {
    if (config.driver !== 'libvirt') throw new VirtError('INVALID_ARG', `the libvirt driver runs driver 'libvirt', not '${config.driver}'`);
    const unsupported = [config.disks.length > 0 && 'disks', config.nics.length > 0 && 'nics', config.container && 'container', ...vmOnlyFields(config)].filter(Boolean);
    if (unsupported.length) throw new VirtError('OPERATION_UNSUPPORTED', `the libvirt driver does not render ${unsupported.join(', ')} yet`);
  }

  private connection(): LibvirtClient {
    if (!this.client || this.client.closed) throw new VirtError('OPERATION_FAILED', 'libvirtd is not connected', { cause: this.connectError });
    return this.client;
  }

  private async lookup(domain: DomainRecord): Promise<DomainRef> {
    return (await this.connection().call('domainLookupByUuid', { uuid: uuidBytes(domain.config.uuid) })).dom;
  }

  private async stateOf(dom: DomainRef): Promise<RunState> {
    const { state, reason } = await this.connection().call('domainGetState', { dom, flags: 0 });
    return runStateOf(state, reason);
  }

  async adopt(domain: DomainRecord): Promise<RunState> {
    try {
      return await this.stateOf(await this.lookup(domain));
    } catch (error) {
      if (VirtError.is(error, 'NO_DOMAIN')) return { state: 'shutoff', reason: 'unknown' };
      throw error;
    }
  }

  async start(domain: DomainRecord, options: StartOptions): Promise<RunState> {
    const client = this.connection();
    const { dom } = await client.call('domainDefineXml', { xml: renderDomainXml(domain.config, this.hypervisor) });
    try {
      await client.call('domainCreateWithFlags', { dom, flags: options.paused ? START_PAUSED : 0 });
    } catch (error) {
      // some libvirt drivers (test:///) refuse START_PAUSED: start, then pause before reporting
      if (!options.paused || !(error instanceof VirtError && error.cause instanceof LibvirtRemoteError && error.cause.libvirtCode === VIR_ERR_INVALID_ARG)) throw error;
      await client.call('domainCreate', { dom });
      await client.call('domainSuspend', { dom });
    }
    return this.stateOf(dom);
  }

  async shutdown(domain: DomainRecord, options: WaitOptions): Promise<RunState> {
    const dom = await this.lookup(domain);
    await this.connection().call('domainShutdown', { dom });
    return this.waitFor(dom, 'shutoff', options.timeoutMs);
  }

  async destroy(domain: DomainRecord): Promise<RunState> {
    const dom = await this.lookup(domain);
    await this.connection().call('domainDestroy', { dom });
    return this.stateOf(dom);
  }

  async reboot(domain: DomainRecord, _options: WaitOptions): Promise<RunState> {
    const dom = await this.lookup(domain);
    await this.connection().call('domainReboot', { dom, flags: 0 });
    return this.stateOf(dom);
  }

  async reset(domain: DomainRecord): Promise<RunState> {
    const dom = await this.lookup(domain);
    await this.connection().call('domainReset', { dom, flags: 0 });
    return this.stateOf(dom);
  }

  async suspend(domain: DomainRecord): Promise<RunState> {
    const dom = await this.lookup(domain);
    await this.connection().call('domainSuspend', { dom });
    return this.stateOf(dom);
  }

  async resume(domain: DomainRecord): Promise<RunState> {
    const dom = await this.lookup(domain);
    await this.connection().call('domainResume', { dom });
    return this.stateOf(dom);
  }

  async undefine(domain: DomainRecord): Promise<void> {
    try {
      await this.connection().call('domainUndefineFlags', { dom: await this.lookup(domain), flags: 0 });
    } catch (error) {
      if (!VirtError.is(error, 'NO_DOMAIN')) throw error;
    }
  }

  /** From virDomainGetInfo (state, memory, vCPU count, CPU time); GetAllDomainStats' richer groups come later. */
  async domainStats(domain: DomainRecord, options: { deadlineMs: number }): Promise<DomainStats> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new VirtError('OPERATION_TIMEOUT', `libvirt stats of ${domain.config.name}: no answer in ${options.deadlineMs} ms`)), options.deadlineMs);
    });
    try {
      const info = await Promise.race([this.lookup(domain).then((dom) => this.connection().call('domainGetInfo', { dom })), deadline]);
      const { state, reason } = runStateOf(info.state, 0);
      return {
        uuid: domain.config.uuid,
        name: domain.config.name,
        state,
        reason: state === domain.state ? domain.reason : reason,
        collectedAt: new Date().toISOString(),
        cpu: { timeNs: Number(info.cpuTime) },
        memory: { maximumBytes: Number(info.maxMem) * 1024, currentBytes: Number(info.memory) * 1024 },
        vcpu: { current: info.nrVirtCpu, maximum: domain.config.vcpus, list: [] },
      };
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retryTimer);
    await this.client?.close().catch((error: unknown) => this.connectError = error as Error);
    this.client = undefined;
  }

  /** No event callbacks yet: polls libvirt's state until it is `state` or the wait expires. */
  private async waitFor(dom: DomainRef, state: DomainState, timeoutMs: number): Promise<RunState> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = await this.stateOf(dom);
      if (run.state === state) return run;
      if (Date.now() >= deadline) throw new VirtError('OPERATION_TIMEOUT', `domain ${dom.name} not ${state} after ${timeoutMs} ms (still ${run.state})`);
      await sleep(POLL_MS);
    }
  }
}
