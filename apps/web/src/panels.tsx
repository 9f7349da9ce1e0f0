import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ErrorLine, runner, Table, TextField } from './ui.js';
import { type Abilities, type Api, type DomainRef, errorText } from './api.js';
import type { AsyncOperation, Domain, DomainSnapshot, DomainSnapshotList, DomainStats } from '@virtbus/api-contract';

const STATS_INTERVAL_MS = 2_000;
/** Points kept per chart: ten minutes at one sample every 2 s. */
const STATS_POINTS = 300;

const sum = <K extends string>(items: Record<NoInfer<K>, number>[] | undefined, key: K) => (items ?? []).reduce((total, item) => total + item[key], 0);

/** One uPlot line chart; `data` is [times, ...series]. */
function Chart({ title, series, data }: { title: string; series: string[]; data: number[][] }) {
  const target = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  useEffect(() => {
    if (!target.current) return;
    const colours = ['#1a5fb4', '#c64600'];
    plot.current = new uPlot(
      { title, width: 560, height: 160, series: [{}, ...series.map((label, index) => ({ label, stroke: colours[index % colours.length]!, width: 1.5 }))], axes: [{}, { size: 60 }] },
      data as uPlot.AlignedData,
      target.current,
    );
    return () => plot.current?.destroy();
  }, [title, series.join()]);
  useEffect(() => plot.current?.setData(data as uPlot.AlignedData), [data]);
  return <div ref={target} role="img" aria-label={title} data-testid={`chart-${title}`} />;
}

/** Live CPU, memory, disk and network charts from `GET …/stats`, as rates between two samples. */
export function StatsPanel({ api, domain }: { api: Api; domain: DomainRef }) {
  const [rows, setRows] = useState<number[][]>([[], [], [], [], [], [], []]);
  const [error, setError] = useState('');
  useEffect(() => {
    let previous: DomainStats | undefined;
    const sample = async () => {
      try {
        const stats = await api.call<DomainStats>('GET', api.domainPath(domain, '/stats'));
        const last = previous;
        previous = stats;
        if (!last) return;
        const seconds = (Date.parse(stats.collectedAt) - Date.parse(last.collectedAt)) / 1000;
        if (seconds <= 0) return;
        const vcpus = stats.vcpu?.current ?? 1;
        const values = [
          Date.parse(stats.collectedAt) / 1000,
          stats.cpu && last.cpu ? ((stats.cpu.timeNs - last.cpu.timeNs) / 1e9 / seconds / vcpus) * 100 : 0,
          (stats.memory?.currentBytes ?? stats.memory?.rssBytes ?? 0) / 2 ** 20,
          (sum(stats.block, 'readBytes') - sum(last.block, 'readBytes')) / seconds / 1024,
          (sum(stats.block, 'writeBytes') - sum(last.block, 'writeBytes')) / seconds / 1024,
          (sum(stats.net, 'rxBytes') - sum(last.net, 'rxBytes')) / seconds / 1024,
          (sum(stats.net, 'txBytes') - sum(last.net, 'txBytes')) / seconds / 1024,
        ];
        setRows((current) => current.map((row, index) => [...row, Math.max(0, values[index]!)].slice(-STATS_POINTS)));
        setError('');
      } catch (failure) {
        setError(errorText(failure));
      }
    };
    void sample();
    const timer = setInterval(() => void sample(), STATS_INTERVAL_MS);
    return () => clearInterval(timer);
  }, [api, domain.node, domain.uuid]);
  const [times, cpu, memory, read, write, rx, tx] = rows as [number[], number[], number[], number[], number[], number[], number[]];
  return (
    <div class="charts">
      <ErrorLine error={error} />
      <p data-testid="stats-samples">{times.length} samples</p>
      <Chart title="CPU %" series={['cpu']} data={[times, cpu]} />
      <Chart title="Memory MiB" series={['memory']} data={[times, memory]} />
      <Chart title="Disk KiB/s" series={['read', 'write']} data={[times, read, write]} />
      <Chart title="Network KiB/s" series={['rx', 'tx']} data={[times, rx, tx]} />
    </div>
  );
}

/** Disks and NICs of the definition (and the running domain's disks), with hotplug: live when running, and the definition. */
export function DevicesPanel({ api, domain, canWrite, onChanged }: { api: Api; domain: Domain; canWrite: boolean; onChanged: () => unknown }) {
  const [error, setError] = useState('');
  const [path, setPath] = useState('');
  const [target, setTarget] = useState('');
  const [format, setFormat] = useState('qcow2');
  const [network, setNetwork] = useState('');
  const run = runner(setError, onChanged);
  const running = domain.state === 'running' || domain.state === 'paused';
  const scope = running ? { live: true, config: domain.persistent } : { config: true };
  const scopeQuery = new URLSearchParams(Object.entries(scope).map(([key, value]) => [key, String(value)])).toString();
  const disks = domain.liveDisks ?? domain.config.disks.map((disk) => ({ target: disk.target ?? '', source: disk.source }));
  const sourceText = (source: unknown) => (source && typeof source === 'object' ? Object.values(source as Record<string, string>).join('/') : '(empty)');
  const attachDisk = (event: Event) => {
    event.preventDefault();
    void run(() => api.call('POST', api.domainPath(domain, '/disks'), { disk: { source: { path }, format, ...(target ? { target } : {}) }, ...scope }));
  };
  const attachNic = (event: Event) => {
    event.preventDefault();
    void run(() => api.call('POST', api.domainPath(domain, '/interfaces'), network ? { type: 'network', source: network } : { type: 'user' }));
  };
  return (
    <div>
      <ErrorLine error={error} />
      <h3>Disks</h3>
      <Table
        label="Disks"
        columns={['Target', 'Source', canWrite && 'Actions']}
        rows={disks}
        rowKey={(disk) => disk.target}
        cells={(disk) => [
          disk.target,
          sourceText(disk.source),
          <button onClick={() => void run(() => api.call('DELETE', api.domainPath(domain, `/disks/${disk.target}?${scopeQuery}`)))} aria-label={`Detach ${disk.target}`}>
            Detach
          </button>,
        ]}
      />
      {canWrite && (
        <form class="inline" onSubmit={attachDisk}>
          <TextField label="Disk image path" value={path} onValue={setPath} required />
          <label>
            Image format{' '}
            <select value={format} onChange={(event) => setFormat((event.target as HTMLSelectElement).value)}>
              <option>qcow2</option>
              <option>raw</option>
            </select>
          </label>
          <TextField label="Target" value={target} onValue={setTarget} placeholder="vdb" size={5} />
          <button type="submit">Attach disk</button>
        </form>
      )}
      <h3>Network interfaces</h3>
      <Table
        label="Network interfaces"
        columns={['MAC', 'Type', 'Source', canWrite && 'Actions']}
        rows={domain.config.nics}
        rowKey={(nic, index) => nic.mac ?? index}
        cells={(nic) => [
          nic.mac,
          nic.type,
          nic.source,
          nic.mac && (
            <button onClick={() => void run(() => api.call('DELETE', api.domainPath(domain, `/interfaces/${nic.mac}`)))} aria-label={`Detach ${nic.mac}`}>
              Detach
            </button>
          ),
        ]}
      />
      {canWrite && (
        <form class="inline" onSubmit={attachNic}>
          {/* a running guest gets tap NICs only (QEMU hotplugs no user-mode NIC) */}
          <TextField label={running ? 'Network' : 'Network (empty: user-mode NAT)'} value={network} onValue={setNetwork} required={running} />
          <button type="submit">Attach interface</button>
        </form>
      )}
    </div>
  );
}

/** Snapshots as a tree (children under their parent), with create, revert and delete. */
export function SnapshotsPanel({ api, domain, can, onChanged }: { api: Api; domain: DomainRef; can: Abilities; onChanged: () => unknown }) {
  const [snapshots, setSnapshots] = useState<DomainSnapshot[]>([]);
  const [name, setName] = useState('');
  const [error, setError] = useState('');
  const load = async () => setSnapshots((await api.call<DomainSnapshotList>('GET', api.domainPath(domain, '/snapshots?limit=1000'))).snapshots);
  const run = runner(setError, async () => {
    await load();
    await onChanged();
  });
  useEffect(() => void load().catch((failure: unknown) => setError(errorText(failure))), [api, domain.node, domain.uuid]);
  const byName = new Map(snapshots.map((snapshot) => [snapshot.name, snapshot]));
  const branch = (snapshot: DomainSnapshot) => (
    <li key={snapshot.name} data-testid={`snapshot-${snapshot.name}`}>
      <strong>{snapshot.name}</strong> {snapshot.current && <em>(current)</em>} · {snapshot.kind} · {snapshot.state} · {new Date(snapshot.createdAt).toLocaleString()}{' '}
      {can.admin && (
        <>
          <button onClick={() => void run(() => api.call('POST', api.domainPath(domain, `/snapshots/${snapshot.name}/revert`), {}))} aria-label={`Revert to ${snapshot.name}`}>
            Revert
          </button>
          <button onClick={() => void run(() => api.call('DELETE', api.domainPath(domain, `/snapshots/${snapshot.name}`)))} aria-label={`Delete ${snapshot.name}`}>
            Delete
          </button>
        </>
      )}
      {snapshot.children.length > 0 && <ul>{snapshot.children.flatMap((child) => (byName.has(child) ? [branch(byName.get(child)!)] : []))}</ul>}
    </li>
  );
  const create = (event: Event) => {
    event.preventDefault();
    void run(() => api.call('POST', api.domainPath(domain, '/snapshots'), name ? { name } : {}));
    setName('');
  };
  return (
    <div>
      <ErrorLine error={error} />
      {can.operate && (
        <form class="inline" onSubmit={create}>
          <TextField label="Snapshot name" value={name} onValue={setName} />
          <button type="submit">Create snapshot</button>
        </form>
      )}
      <ul class="tree" aria-label="Snapshot tree">
        {snapshots.filter((snapshot) => !snapshot.parent || !byName.has(snapshot.parent)).map(branch)}
      </ul>
    </div>
  );
}

/** Migrate to another node: the async operation's progress as a progress bar, polled until it ends. */
export function MigratePanel({ api, domain, nodes }: { api: Api; domain: DomainRef; nodes: string[] }) {
  const [chosen, setDestination] = useState('');
  // the node list arrives after the first render
  const destination = chosen || nodes[0] || '';
  const [offline, setOffline] = useState(false);
  const [undefineSource, setUndefineSource] = useState(false);
  const [operation, setOperation] = useState<AsyncOperation | undefined>();
  const [error, setError] = useState('');
  const migrate = async (event: Event) => {
    event.preventDefault();
    setError('');
    try {
      let current = await api.call<AsyncOperation>('POST', api.domainPath(domain, '/migrate'), { destination, offline, undefineSource });
      setOperation(current);
      while (current.status === 'running') {
        await new Promise((resolve) => setTimeout(resolve, 500));
        current = await api.call<AsyncOperation>('GET', `/v1/nodes/${encodeURIComponent(domain.node)}/operations/${current.id}`);
        setOperation(current);
      }
      if (current.error) setError(`${current.error.code}: ${current.error.message}`);
      else if (current.status === 'success') location.hash = `#/domains/${encodeURIComponent(destination)}/${domain.uuid}`;
    } catch (failure) {
      setError(errorText(failure));
    }
  };
  if (nodes.length === 0) return <p>No other node to migrate to.</p>;
  return (
    <form class="inline" onSubmit={(event) => void migrate(event)}>
      <label>
        Destination node
        <select value={destination} onChange={(event) => setDestination((event.target as HTMLSelectElement).value)}>
          {nodes.map((node) => (
            <option key={node}>{node}</option>
          ))}
        </select>
      </label>
      <label class="radio">
        <input type="checkbox" checked={offline} onChange={(event) => setOffline((event.target as HTMLInputElement).checked)} /> Offline (the definition only)
      </label>
      <label class="radio">
        <input type="checkbox" checked={undefineSource} onChange={(event) => setUndefineSource((event.target as HTMLInputElement).checked)} /> Remove it from this node
      </label>
      <button type="submit">Migrate</button>
      {operation && (
        <label>
          Progress ({operation.status}) <progress max={100} value={operation.progress.percent} />
        </label>
      )}
      <ErrorLine error={error} />
    </form>
  );
}
