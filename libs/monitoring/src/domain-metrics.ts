import { Counter, Gauge, type Registry } from 'prom-client';
import { DomainStates, isActive, type DomainState, type DomainStats, type StateReason } from '@virtbus/api-contract';

/** A disk as defined, for libvirt_domain_block_stats_info. */
export interface DiskListing {
  target: string;
  bus: string;
  format: string;
  source: string;
}

/** A NIC as defined, for libvirt_domain_interface_stats_info. */
export interface NicListing {
  type: string;
  source?: string;
  mac: string;
  model: string;
}

/** A domain's running job (a migration or block jobs) for libvirt_domain_job_info_*, as virDomainGetJobInfo reports one. */
export interface DomainJobListing {
  /** Epoch ms the job started. */
  startedAt: number;
  dataTotalBytes: number;
  dataProcessedBytes: number;
  memoryTotalBytes?: number;
  memoryProcessedBytes?: number;
  memoryRemainingBytes?: number;
}

/** The domain's OS type as libvirt's <os><type arch machine> names it, for libvirt_domain_info. */
export interface DomainOsListing {
  type: string;
  arch: string;
  machine: string;
}

/** What the collector needs to know about a domain without asking its hypervisor. */
export interface DomainListing {
  /** The job running on an active domain; absent when none (job type 0, VIR_DOMAIN_JOB_NONE). */
  job?: DomainJobListing;
  os?: DomainOsListing;
  /** Devices of an active domain (their info metrics); absent for shut-off ones. */
  disks?: readonly DiskListing[];
  nics?: readonly NicListing[];
  uuid: string;
  name: string;
  state: DomainState;
  reason: StateReason;
  vcpus: number;
  memoryMiB: number;
}

export const StoragePoolStates = ['inactive', 'building', 'running', 'degraded', 'inaccessible'] as const;
export type StoragePoolState = (typeof StoragePoolStates)[number];

export interface StoragePoolListing {
  name: string;
  state: StoragePoolState;
  capacityBytes: number;
  allocationBytes: number;
  availableBytes: number;
}

/** The agent's view of its domains; `domainStats` may hang (stuck QMP) and is bounded by the collector. */
export interface DomainStatsSource {
  listDomains(): Promise<DomainListing[]>;
  domainStats(uuid: string, options: { deadlineMs: number }): Promise<DomainStats>;
  listPools?(): Promise<StoragePoolListing[]>;
}

export interface DomainMetricsOptions {
  registry: Registry;
  node: string;
  source: DomainStatsSource;
  /** Stats are refreshed at most this often; scrapes in between are served from the cache. */
  cacheIntervalMs?: number;
  /** Bound for one refresh: every domain gets this long, in parallel; a scrape never waits longer. */
  deadlineMs?: number;
  /** Told about a domain whose stats failed (not timed out), e.g. to count driver errors. */
  onError?: (uuid: string, error: unknown) => void;
}

export interface DomainMetrics {
  /** Refreshes now (bounded by deadlineMs) unless a refresh is already running; for tests and warm-up. */
  refresh(): Promise<void>;
}

/** inovex prometheus-libvirt-exporter's state_desc texts, indexed like virDomainState. */
const STATE_DESCRIPTIONS: Record<DomainState, string> = {
  nostate: 'no state',
  running: 'the domain is running',
  blocked: 'the domain is blocked on resource',
  paused: 'the domain is paused by user',
  shutdown: 'the domain is being shut down',
  shutoff: 'the domain is shut off',
  crashed: 'the domain is crashed',
  pmsuspended: 'the domain is suspended by guest power management',
};

/** virVcpuState numbering. */
const VCPU_STATE_CODES = { offline: 0, running: 1, blocked: 2 } as const;

/** States in which a domain has a live hypervisor process to ask for stats. */

const MIB = 1024 * 1024;
const NS_PER_SECOND = 1e9;

interface DomainEntry {
  listing: DomainListing;
  stats: DomainStats | undefined;
  timedOut: boolean;
}

interface Snapshot {
  up: boolean;
  domains: DomainEntry[];
  pools: StoragePoolListing[];
  poolsTimedOut: boolean;
}

const TIMED_OUT = Symbol('timed out');

/** Resolves to the promise's value, or TIMED_OUT once `deadline` passes; never rejects on time. */
function raceDeadline<T>(promise: Promise<T>, deadline: Promise<typeof TIMED_OUT>): Promise<T | typeof TIMED_OUT> {
  return Promise.race([promise, deadline]);
}

/**
 * libvirt-exporter-compatible domain metrics (inovex names and labels, plus `uuid` and `node`), collected on scrape
 * from a cache refreshed at most every cacheIntervalMs; a domain that misses its deadline keeps its last good values
 * and is flagged with libvirt_domain_timed_out 1.
 */
export function createDomainMetrics(options: DomainMetricsOptions): DomainMetrics {
  const { registry, node, source } = options;
  const cacheIntervalMs = options.cacheIntervalMs ?? 5_000;
  const deadlineMs = options.deadlineMs ?? 2_000;

  const lastGood = new Map<string, DomainStats>();
  // One outstanding stats call per domain: a stuck hypervisor must not accumulate calls scrape after scrape.
  const pending = new Map<string, Promise<DomainStats>>();
  let snapshot: Snapshot = { up: false, domains: [], pools: [], poolsTimedOut: false };
  let refreshedAt = -Infinity;
  let inflight: Promise<Snapshot> | undefined;

  function statsFor(uuid: string): Promise<DomainStats> {
    let call = pending.get(uuid);
    if (!call) {
      call = Promise.resolve()
        .then(() => source.domainStats(uuid, { deadlineMs }))
        .then((stats) => {
          lastGood.set(uuid, stats);
          return stats;
        })
        .finally(() => pending.delete(uuid));
      // A late failure is reported below when awaited in time; afterwards it must not be unhandled.
      call.catch(() => undefined);
      pending.set(uuid, call);
    }
    return call;
  }

  async function collectOnce(): Promise<Snapshot> {
    const timer = new AbortController();
    const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
      const handle = setTimeout(() => resolve(TIMED_OUT), deadlineMs);
      timer.signal.addEventListener('abort', () => clearTimeout(handle));
    });
    try {
      const listingCall = Promise.resolve().then(() => source.listDomains());
      listingCall.catch(() => undefined);
      const poolsCall = source.listPools ? Promise.resolve().then(() => source.listPools!()) : Promise.resolve([]);
      poolsCall.catch(() => undefined);

      let listing: DomainListing[] | typeof TIMED_OUT;
      try {
        listing = await raceDeadline(listingCall, deadline);
      } catch {
        // The agent cannot list its own domains: report down, keep the last values as they were.
        return { ...snapshot, up: false };
      }
      if (listing === TIMED_OUT) {
        const stale = snapshot.domains.map((entry) => ({ ...entry, timedOut: true }));
        return { up: false, domains: stale, pools: snapshot.pools, poolsTimedOut: true };
      }

      const known = new Set(listing.map((domain) => domain.uuid));
      for (const uuid of lastGood.keys()) if (!known.has(uuid)) lastGood.delete(uuid);

      const domains = await Promise.all(
        listing.map(async (domain): Promise<DomainEntry> => {
          if (!isActive(domain.state)) {
            lastGood.delete(domain.uuid);
            return { listing: domain, stats: undefined, timedOut: false };
          }
          try {
            const result = await raceDeadline(statsFor(domain.uuid), deadline);
            if (result === TIMED_OUT) return { listing: domain, stats: lastGood.get(domain.uuid), timedOut: true };
            return { listing: domain, stats: result, timedOut: false };
          } catch (error) {
            options.onError?.(domain.uuid, error);
            return { listing: domain, stats: undefined, timedOut: false };
          }
        }),
      );

      let pools: StoragePoolListing[] | typeof TIMED_OUT;
      try {
        pools = await raceDeadline(poolsCall, deadline);
      } catch {
        pools = [];
      }
      const poolsTimedOut = pools === TIMED_OUT;
      return { up: true, domains, pools: pools === TIMED_OUT ? snapshot.pools : pools, poolsTimedOut };
    } finally {
      timer.abort();
    }
  }

  function refresh(): Promise<void> {
    if (!inflight) {
      refreshedAt = Date.now();
      inflight = collectOnce()
        .then((next) => (snapshot = next))
        .finally(() => (inflight = undefined));
    }
    return inflight.then(() => undefined);
  }

  async function current(): Promise<Snapshot> {
    if (inflight) return inflight;
    if (Date.now() - refreshedAt >= cacheIntervalMs) await refresh();
    return snapshot;
  }

  const domainLabels = ['domain', 'uuid', 'node'] as const;
  const labelsOf = (listing: DomainListing) => ({ domain: listing.name, uuid: listing.uuid, node });

  /** A metric family filled from the snapshot on each scrape; `fill` sets values after a reset. */
  function family<L extends string>(
    kind: 'gauge' | 'counter',
    name: string,
    help: string,
    labelNames: readonly L[],
    fill: (set: (labels: Record<L, string>, value: number) => void, data: Snapshot) => void,
  ): void {
    const common = { name, help, labelNames, registers: [registry] };
    const refresh = async (metric: { reset(): void }, set: (labels: Record<L, string>, value: number) => void) => {
      const data = await current();
      metric.reset();
      fill(set, data);
    };
    if (kind === 'gauge') {
      new Gauge<L>({
        ...common,
        collect() {
          return refresh(this, (labels, value) => this.set(labels, value));
        },
      });
    } else {
      // Counters mirror the hypervisor's cumulative values: reset, then add the absolute value.
      new Counter<L>({
        ...common,
        collect() {
          return refresh(this, (labels, value) => this.inc(labels, Math.max(0, value)));
        },
      });
    }
  }

  /** Per-domain metric from an optional stats value. */
  function perDomain(
    kind: 'gauge' | 'counter',
    name: string,
    help: string,
    value: (entry: DomainEntry) => number | undefined,
  ): void {
    family(kind, name, help, domainLabels, (set, data) => {
      for (const entry of data.domains) {
        const v = value(entry);
        if (v !== undefined && Number.isFinite(v)) set(labelsOf(entry.listing), v);
      }
    });
  }

  family('gauge', 'libvirt_up', "Whether scraping libvirt's metrics was successful.", ['node'], (set, data) =>
    set({ node }, data.up ? 1 : 0),
  );
  family('gauge', 'libvirt_domains', 'Number of domains', ['node'], (set, data) => set({ node }, data.domains.length));
  perDomain('gauge', 'libvirt_domain_timed_out', "Whether scraping libvirt's domain metrics has timed out.", (entry) =>
    entry.timedOut ? 1 : 0,
  );

  family('gauge', 'libvirt_domain_info_state', 'Code of the domain state', [...domainLabels, 'state_desc'], (set, data) => {
    for (const { listing } of data.domains) {
      set({ ...labelsOf(listing), state_desc: STATE_DESCRIPTIONS[listing.state] }, DomainStates.indexOf(listing.state));
    }
  });
  perDomain(
    'gauge',
    'libvirt_domain_info_maximum_memory_bytes',
    'Maximum allowed memory of the domain, in bytes.',
    (entry) => entry.stats?.memory?.maximumBytes ?? entry.listing.memoryMiB * MIB,
  );
  perDomain(
    'gauge',
    'libvirt_domain_info_memory_usage_bytes',
    'Memory usage of the domain, in bytes.',
    (entry) => entry.stats?.memory?.currentBytes ?? entry.stats?.memory?.maximumBytes ?? entry.listing.memoryMiB * MIB,
  );
  perDomain(
    'gauge',
    'libvirt_domain_info_virtual_cpus',
    'Number of virtual CPUs for the domain.',
    (entry) => entry.stats?.vcpu?.current ?? entry.listing.vcpus,
  );
  perDomain(
    'counter',
    'libvirt_domain_info_cpu_time_seconds_total',
    'Amount of CPU time used by the domain, in seconds.',
    (entry) => (entry.stats ? (entry.stats.cpu?.timeNs ?? 0) / NS_PER_SECOND : isActive(entry.listing.state) ? undefined : 0),
  );

  const memory = (entry: DomainEntry) => entry.stats?.memory;
  perDomain('gauge', 'libvirt_domain_memory_stats_current_balloon_bytes', 'Current balloon value (in bytes).', (e) => memory(e)?.currentBytes);
  perDomain('gauge', 'libvirt_domain_memory_stats_maximum_bytes', 'Maximum memory used by the domain (in bytes)', (e) => memory(e)?.maximumBytes);
  perDomain(
    'gauge',
    'libvirt_domain_memory_stats_unused_bytes',
    'The amount of memory left unused by the system (in bytes).',
    (e) => memory(e)?.unusedBytes,
  );
  perDomain(
    'gauge',
    'libvirt_domain_memory_stats_available_bytes',
    'The amount of usable memory as seen by the domain (in bytes).',
    (e) => memory(e)?.availableBytes,
  );
  perDomain(
    'gauge',
    'libvirt_domain_memory_stats_usable_bytes',
    'How much the balloon can be inflated without pushing the guest system to swap (in bytes).',
    (e) => memory(e)?.usableBytes,
  );
  perDomain(
    'gauge',
    'libvirt_domain_memory_stats_rss_bytes',
    'Resident Set Size of running domain\'s process (in bytes).',
    (e) => memory(e)?.rssBytes,
  );
  perDomain('gauge', 'libvirt_domain_memory_stats_used_percent', 'The amount of memory in percent, that used by domain.', (e) => {
    const stats = memory(e);
    if (stats?.availableBytes === undefined || stats.usableBytes === undefined || stats.availableBytes === 0) return undefined;
    return ((stats.availableBytes - stats.usableBytes) / stats.availableBytes) * 100;
  });

  perDomain('gauge', 'libvirt_domain_vcpu_current', 'Number of current online vCPUs.', (e) => e.stats?.vcpu?.current);
  perDomain('gauge', 'libvirt_domain_vcpu_maximum', 'Number of maximum online vCPUs.', (e) => e.stats?.vcpu?.maximum);
  const vcpuLabels = [...domainLabels, 'vcpu'] as const;
  family('gauge', 'libvirt_domain_vcpu_state', 'State of the vCPU.', vcpuLabels, (set, data) => {
    for (const entry of data.domains) {
      for (const vcpu of entry.stats?.vcpu?.list ?? []) set({ ...labelsOf(entry.listing), vcpu: String(vcpu.id) }, VCPU_STATE_CODES[vcpu.state]);
    }
  });
  family('counter', 'libvirt_domain_vcpu_time_seconds_total', 'Amount of CPU time used by the vCPU, in seconds.', vcpuLabels, (set, data) => {
    for (const entry of data.domains) {
      for (const vcpu of entry.stats?.vcpu?.list ?? []) {
        if (vcpu.timeNs !== undefined) set({ ...labelsOf(entry.listing), vcpu: String(vcpu.id) }, vcpu.timeNs / NS_PER_SECOND);
      }
    }
  });

  type Block = NonNullable<DomainStats['block']>[number];
  const blockLabels = [...domainLabels, 'target_device'] as const;
  const blockMetric = (kind: 'gauge' | 'counter', name: string, help: string, value: (block: Block) => number | undefined) =>
    family(kind, `libvirt_domain_block_stats_${name}`, help, blockLabels, (set, data) => {
      for (const entry of data.domains) {
        for (const block of entry.stats?.block ?? []) {
          const v = value(block);
          if (v !== undefined) set({ ...labelsOf(entry.listing), target_device: block.name }, v);
        }
      }
    });
  blockMetric('counter', 'read_bytes_total', 'Number of bytes read from a block device, in bytes.', (b) => b.readBytes);
  blockMetric('counter', 'read_requests_total', 'Number of read requests from a block device.', (b) => b.readRequests);
  blockMetric('counter', 'read_time_seconds_total', 'Total time spent on reads from a block device, in seconds.', (b) => b.readTimeNs / NS_PER_SECOND);
  blockMetric('counter', 'write_bytes_total', 'Number of bytes written to a block device, in bytes.', (b) => b.writeBytes);
  blockMetric('counter', 'write_requests_total', 'Number of write requests to a block device.', (b) => b.writeRequests);
  blockMetric('counter', 'write_time_seconds_total', 'Total time spent on writes on a block device, in seconds', (b) => b.writeTimeNs / NS_PER_SECOND);
  blockMetric('counter', 'flush_requests_total', 'Total flush requests from a block device.', (b) => b.flushRequests);
  blockMetric('gauge', 'capacity_bytes', 'Logical size in bytes of the block device backing image.', (b) => b.capacityBytes);

  family(
    'gauge',
    'libvirt_domain_block_stats_info',
    'Metadata information on block devices.',
    [...domainLabels, 'disk_type', 'driver_cache', 'driver_discard', 'driver_name', 'driver_type', 'serial', 'source_file', 'target_bus', 'target_device'],
    (set, data) => {
      for (const { listing } of data.domains) {
        for (const disk of listing.disks ?? []) {
          set(
            { ...labelsOf(listing), disk_type: 'file', driver_cache: '', driver_discard: '', driver_name: 'qemu', driver_type: disk.format, serial: '', source_file: disk.source, target_bus: disk.bus, target_device: disk.target },
            1,
          );
        }
      }
    },
  );
  family(
    'gauge',
    'libvirt_domain_interface_stats_info',
    'Metadata information on network interfaces.',
    [...domainLabels, 'interface_type', 'source_bridge', 'target_device', 'mac_address', 'model_type', 'mtu_size'],
    (set, data) => {
      for (const { listing } of data.domains) {
        for (const nic of listing.nics ?? []) {
          set({ ...labelsOf(listing), interface_type: nic.type, source_bridge: nic.source ?? '', target_device: '', mac_address: nic.mac, model_type: nic.model, mtu_size: '' }, 1);
        }
      }
    },
  );

  type Nic = NonNullable<DomainStats['net']>[number];
  const nicMetric = (name: string, help: string, value: (nic: Nic) => number) =>
    family('counter', `libvirt_domain_interface_stats_${name}`, help, blockLabels, (set, data) => {
      for (const entry of data.domains) {
        for (const nic of entry.stats?.net ?? []) set({ ...labelsOf(entry.listing), target_device: nic.name }, value(nic));
      }
    });
  nicMetric('receive_bytes_total', 'Number of bytes received on a network interface, in bytes.', (n) => n.rxBytes);
  nicMetric('receive_packets_total', 'Number of packets received on a network interface.', (n) => n.rxPackets);
  nicMetric('receive_errors_total', 'Number of packet receive errors on a network interface.', (n) => n.rxErrors);
  nicMetric('receive_drops_total', 'Number of packet receive drops on a network interface.', (n) => n.rxDrops);
  nicMetric('transmit_bytes_total', 'Number of bytes transmitted on a network interface, in bytes.', (n) => n.txBytes);
  nicMetric('transmit_packets_total', 'Number of packets transmitted on a network interface.', (n) => n.txPackets);
  nicMetric('transmit_errors_total', 'Number of packet transmit errors on a network interface.', (n) => n.txErrors);
  nicMetric('transmit_drops_total', 'Number of packet transmit drops on a network interface.', (n) => n.txDrops);

  const poolLabels = ['storage_pool', 'node'] as const;
  const poolMetric = (name: string, help: string, value: (pool: StoragePoolListing) => number) =>
    family('gauge', `libvirt_storage_pool_${name}`, help, poolLabels, (set, data) => {
      for (const pool of data.pools) set({ storage_pool: pool.name, node }, value(pool));
    });
  poolMetric('state', 'State of the storage pool.', (p) => StoragePoolStates.indexOf(p.state));
  poolMetric('capacity_bytes', 'Size of the storage pool in logical bytes.', (p) => p.capacityBytes);
  poolMetric('allocation_bytes', 'Current allocation bytes of the storage pool.', (p) => p.allocationBytes);
  poolMetric('available_bytes', 'Remaining free space of the storage pool in bytes.', (p) => p.availableBytes);
  family('gauge', 'libvirt_storage_pool_timed_out', "Whether scraping libvirt's storage pool metrics has timed out.", poolLabels, (set, data) => {
    for (const pool of data.pools) set({ storage_pool: pool.name, node }, data.poolsTimedOut ? 1 : 0);
  });

  family('gauge', 'libvirt_domain_info', 'Metadata labels for the domain.', [...domainLabels, 'os_type', 'os_type_arch', 'os_type_machine'], (set, data) => {
    for (const { listing } of data.domains) set({ ...labelsOf(listing), os_type: listing.os?.type ?? '', os_type_arch: listing.os?.arch ?? '', os_type_machine: listing.os?.machine ?? '' }, 1);
  });

  // virDomainJobType: NONE 0, UNBOUNDED 2 (a migration or block job of unknown end); inovex reports every active domain
  const jobMetric = (name: string, help: string, value: (job: DomainJobListing | undefined, now: number) => number) =>
    family('gauge', `libvirt_domain_job_info_${name}`, help, domainLabels, (set, data) => {
      const now = Date.now();
      for (const { listing } of data.domains) if (isActive(listing.state)) set(labelsOf(listing), value(listing.job, now));
    });
  jobMetric('type', 'Code of the domain job type', (job) => (job ? 2 : 0));
  jobMetric('time_elapsed_seconds', 'Time elapsed since the start of the domain job', (job, now) => (job ? Math.max(0, now - job.startedAt) / 1000 : 0));
  jobMetric('time_remaining_seconds', 'Time remaining until the end of the domain job', () => 0);
  jobMetric('data_total_bytes', 'Data total of the domain job', (job) => job?.dataTotalBytes ?? 0);
  jobMetric('data_processed_bytes', 'Data processed of the domain job', (job) => job?.dataProcessedBytes ?? 0);
  jobMetric('data_remaining_bytes', 'Data remaining of the domain job', (job) => (job ? Math.max(0, job.dataTotalBytes - job.dataProcessedBytes) : 0));
  jobMetric('memory_total_bytes', 'Memory total of the domain job', (job) => job?.memoryTotalBytes ?? 0);
  jobMetric('memory_processed_bytes', 'Memory processed of the domain job', (job) => job?.memoryProcessedBytes ?? 0);
  jobMetric('memory_remaining_bytes', 'Memory remaining of the domain job', (job) => job?.memoryRemainingBytes ?? 0);
  // no job of this agent writes a save file while it is tracked: file figures stay 0, as libvirt reports outside save/dump
  jobMetric('file_total_bytes', 'File total of the domain job', () => 0);
  jobMetric('file_processed_bytes', 'File processed of the domain job', () => 0);
  jobMetric('file_remaining_bytes', 'File remaining of the domain job', () => 0);

  return { refresh };
}
