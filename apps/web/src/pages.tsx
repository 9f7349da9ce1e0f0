import { useEffect, useState } from 'preact/hooks';
import { type Api, errorText } from './api.js';
import type { DhcpLease, DhcpLeaseList, ErrorBody, Network, NetworkList, NetworkStatePut, NodeSummary, StoragePool, StoragePoolStatePut, StorageVolume } from '@virtbus/api-contract';
import { Cell, ErrorLine, RowActions, runner, Table, TextField } from './ui.js';

const nodePath = (node: string) => `/v1/nodes/${encodeURIComponent(node)}`;
const bytes = (value: number) => (value >= 2 ** 30 ? `${(value / 2 ** 30).toFixed(1)} GiB` : `${(value / 2 ** 20).toFixed(1)} MiB`);

/** The node a page shows: a select over the online nodes. */
function useNode(api: Api): [string, (node: string) => void, NodeSummary[]] {
  const [nodes, setNodes] = useState<NodeSummary[]>([]);
  const [node, setNode] = useState('');
  useEffect(() => {
    void api.nodes().then((list) => {
      const online = list.nodes.filter((item) => item.online);
      setNodes(online);
      setNode((current) => current || online[0]?.node || '');
    }, () => undefined);
  }, [api]);
  return [node, setNode, nodes];
}

function NodeSelect({ node, nodes, onChange }: { node: string; nodes: NodeSummary[]; onChange: (node: string) => void }) {
  return (
    <label>
      Node{' '}
      <select value={node} onChange={(event) => onChange((event.target as HTMLSelectElement).value)}>
        {nodes.map((item) => (
          <option key={item.node}>{item.node}</option>
        ))}
      </select>
    </label>
  );
}

/** Uploads with XMLHttpRequest: fetch reports no upload progress. */
function uploadFile(api: Api, url: string, file: File, onProgress: (percent: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open('PUT', url);
    if (api.token) request.setRequestHeader('authorization', `Bearer ${api.token}`);
    request.setRequestHeader('content-type', 'application/octet-stream');
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress((event.loaded / event.total) * 100);
    };
    request.onload = () => {
      if (request.status < 300) return resolve();
      try {
        const body = JSON.parse(request.responseText) as ErrorBody;
        reject(new Error(`${body.code}: ${body.message}`));
      } catch {
        reject(new Error(`upload: ${request.status}`));
      }
    };
    request.onerror = () => reject(new Error('upload failed'));
    request.send(file);
  });
}

/** Storage: pools of a node and the volumes of the chosen one; upload an image with a progress bar, download a volume. */
export function StoragePage({ api, canWrite }: { api: Api; canWrite: boolean }) {
  const [node, setNode, nodes] = useNode(api);
  const [pools, setPools] = useState<StoragePool[]>([]);
  const [pool, setPool] = useState('');
  const [volumes, setVolumes] = useState<StorageVolume[]>([]);
  const [error, setError] = useState('');
  const [file, setFile] = useState<File | undefined>();
  const [volumeName, setVolumeName] = useState('');
  const [progress, setProgress] = useState<number | undefined>();
  const [newPool, setNewPool] = useState({ name: '', target: '' });
  const [newVolume, setNewVolume] = useState({ name: '', capacity: '1G', format: 'qcow2' });

  const loadPools = async () => {
    if (!node) return;
    const list = await api.call<{ pools: StoragePool[] }>('GET', `${nodePath(node)}/storage-pools?limit=1000`);
    setPools(list.pools);
    setPool((current) => (list.pools.some((item) => item.name === current) ? current : (list.pools[0]?.name ?? '')));
  };
  const loadVolumes = async () => {
    if (!node || !pool) return setVolumes([]);
    setVolumes((await api.call<{ volumes: StorageVolume[] }>('GET', `${nodePath(node)}/storage-pools/${encodeURIComponent(pool)}/volumes?limit=1000`)).volumes);
  };
  useEffect(() => void loadPools().catch((failure: unknown) => setError(errorText(failure))), [api, node]);
  useEffect(() => void loadVolumes().catch((failure: unknown) => setError(errorText(failure))), [api, node, pool]);

  const run = runner(setError);
  const poolAction = (name: string, action: StoragePoolStatePut['action']) =>
    run(async () => {
      await api.call('PUT', `${nodePath(node)}/storage-pools/${encodeURIComponent(name)}/state`, { action });
      await loadPools();
    });
  // libvirt's pool-define, pool-build, pool-start in one form, as Cockpit's "start pool" does
  const definePool = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      const pools = `${nodePath(node)}/storage-pools`;
      await api.call('POST', pools, { name: newPool.name, type: 'dir', ...(newPool.target ? { target: newPool.target } : {}) });
      for (const action of ['build', 'start'] as const) await api.call('PUT', `${pools}/${encodeURIComponent(newPool.name)}/state`, { action });
      setNewPool({ name: '', target: '' });
      await loadPools();
    });
  };
  const undefinePool = (name: string) =>
    run(async () => {
      await api.call('DELETE', `${nodePath(node)}/storage-pools/${encodeURIComponent(name)}`);
      await loadPools();
    });
  const volumePath = (name = '') => `${nodePath(node)}/storage-pools/${encodeURIComponent(pool)}/volumes${name && `/${encodeURIComponent(name)}`}`;
  const createVolume = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      await api.call('POST', volumePath(), newVolume);
      setNewVolume({ ...newVolume, name: '' });
      await loadVolumes();
    });
  };
  const deleteVolume = (name: string) =>
    run(async () => {
      await api.call('DELETE', volumePath(name));
      await loadVolumes();
    });
  const upload = (event: Event) => {
    event.preventDefault();
    if (!file) return;
    setProgress(0);
    void run(async () => {
      const name = volumeName || file.name;
      await uploadFile(api, `${nodePath(node)}/storage-pools/${encodeURIComponent(pool)}/volumes/${encodeURIComponent(name)}/content?create=true`, file, setProgress);
      setProgress(100);
      await loadVolumes();
    });
  };
  // a link cannot carry the token header: fetch the bytes, then save them from a blob URL
  const download = (volume: StorageVolume) =>
    run(async () => {
      const response = await fetch(`${nodePath(node)}/storage-pools/${encodeURIComponent(pool)}/volumes/${encodeURIComponent(volume.name)}/content`, {
        headers: api.token ? { authorization: `Bearer ${api.token}` } : {},
      });
      if (!response.ok) throw new Error(`download: ${response.status}`);
      const url = URL.createObjectURL(await response.blob());
      const link = Object.assign(document.createElement('a'), { href: url, download: volume.name });
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    });

  return (
    <main>
      <section aria-labelledby="storage-title">
        <h2 id="storage-title">Storage pools</h2>
        <NodeSelect node={node} nodes={nodes} onChange={setNode} />
        <ErrorLine error={error} />
        <Table
          label="Storage pools"
          columns={['Pool', 'Type', 'State', 'Available / capacity', canWrite && 'Actions']}
          rows={pools}
          testId="pool"
          rowProps={(item) => ({ class: item.name === pool ? 'selected' : undefined })}
          cells={(item) => [
            <button class="link" onClick={() => setPool(item.name)} aria-label={`Volumes of ${item.name}`}>
              {item.name}
            </button>,
            item.type,
            item.state,
            `${bytes(item.availableBytes)} / ${bytes(item.capacityBytes)}`,
            <RowActions
              subject={`pool ${item.name}`}
              actions={[
                { label: 'Start', disabled: item.state === 'running', run: () => poolAction(item.name, 'start') },
                { label: 'Stop', disabled: item.state !== 'running', run: () => poolAction(item.name, 'stop') },
                { label: 'Refresh', disabled: item.state !== 'running', run: () => poolAction(item.name, 'refresh') },
                // undefine only: the directory and its volumes stay
                { label: 'Undefine', disabled: item.state === 'running', run: () => undefinePool(item.name) },
              ]}
            />,
          ]}
        />
        {canWrite && (
          <form class="inline" onSubmit={definePool} aria-label="Define a directory pool">
            <TextField label="Pool name" value={newPool.name} onValue={(name) => setNewPool({ ...newPool, name })} required />
            <TextField label="Directory" value={newPool.target} onValue={(target) => setNewPool({ ...newPool, target })} placeholder="default: under the agent's state dir" />
            <button type="submit">Create pool</button>
          </form>
        )}
      </section>
      {pool && (
        <section aria-labelledby="volumes-title">
          <h2 id="volumes-title">Volumes of {pool}</h2>
          <Table
            label="Volumes"
            columns={['Volume', 'Format', 'Capacity', 'Allocation', canWrite && 'Actions']}
            rows={volumes}
            testId="volume"
            cells={(volume) => [
              ...[volume.name, volume.format, bytes(volume.capacityBytes), bytes(volume.allocationBytes)],
              <>
                <button onClick={() => void download(volume)} aria-label={`Download ${volume.name}`}>
                  Download
                </button>
                <button onClick={() => void deleteVolume(volume.name)} aria-label={`Delete volume ${volume.name}`}>
                  Delete
                </button>
              </>,
            ]}
          />
          {canWrite && (
            <form class="inline" onSubmit={createVolume} aria-label="Create a volume">
              <TextField label="New volume name" value={newVolume.name} onValue={(name) => setNewVolume({ ...newVolume, name })} required />
              <TextField label="Capacity" value={newVolume.capacity} onValue={(capacity) => setNewVolume({ ...newVolume, capacity })} size={6} required />
              <label>
                Format{' '}
                <select value={newVolume.format} onChange={(event) => setNewVolume({ ...newVolume, format: (event.target as HTMLSelectElement).value })}>
                  <option>qcow2</option>
                  <option>raw</option>
                </select>
              </label>
              <button type="submit">Create volume</button>
            </form>
          )}
          {canWrite && (
            <form class="inline" onSubmit={upload}>
              <label>
                Image file <input type="file" onChange={(event) => setFile((event.target as HTMLInputElement).files?.[0])} />
              </label>
              <TextField label="Volume name" value={volumeName} onValue={setVolumeName} placeholder="the file's name" />
              <button type="submit" disabled={!file}>
                Upload
              </button>
              {progress !== undefined && (
                <label>
                  Upload progress <progress max={100} value={progress} data-testid="upload-progress" />
                </label>
              )}
            </form>
          )}
        </section>
      )}
    </main>
  );
}

/** Networks of a node: start/stop and each one's DHCP leases. */
export function NetworksPage({ api, canWrite }: { api: Api; canWrite: boolean }) {
  const [node, setNode, nodes] = useNode(api);
  const [networks, setNetworks] = useState<Network[]>([]);
  const [leases, setLeases] = useState<{ network: string; leases: DhcpLease[] } | undefined>();
  const [error, setError] = useState('');
  const load = async () => {
    if (node) setNetworks((await api.call<NetworkList>('GET', `${nodePath(node)}/networks?limit=1000`)).networks);
  };
  useEffect(() => void load().catch((failure: unknown) => setError(errorText(failure))), [api, node]);
  const run = runner(setError);
  const act = (name: string, action: NetworkStatePut['action']) =>
    run(async () => {
      await api.call('PUT', `${nodePath(node)}/networks/${encodeURIComponent(name)}/state`, { action });
      await load();
    });
  const showLeases = (name: string) =>
    run(async () => setLeases({ network: name, leases: (await api.call<DhcpLeaseList>('GET', `${nodePath(node)}/networks/${encodeURIComponent(name)}/leases`)).leases }));
  return (
    <main>
      <section aria-labelledby="networks-title">
        <h2 id="networks-title">Networks</h2>
        <NodeSelect node={node} nodes={nodes} onChange={setNode} />
        <ErrorLine error={error} />
        <Table
          label="Networks"
          columns={['Network', 'Mode', 'State', 'IPv4', 'Actions']}
          rows={networks}
          testId="network"
          cells={(network) => [
            network.name,
            network.mode,
            new Cell({ 'data-testid': 'state' }, network.state),
            network.ipv4?.address ?? '',
            <>
              {canWrite && (
                <RowActions
                  subject={`network ${network.name}`}
                  actions={[
                    { label: 'Start', disabled: network.state === 'active', run: () => act(network.name, 'start') },
                    { label: 'Stop', disabled: network.state !== 'active', run: () => act(network.name, 'stop') },
                  ]}
                />
              )}
              <button onClick={() => void showLeases(network.name)} aria-label={`DHCP leases of ${network.name}`}>
                Leases
              </button>
            </>,
          ]}
        />
      </section>
      {leases && (
        <section aria-labelledby="leases-title">
          <h2 id="leases-title">DHCP leases of {leases.network}</h2>
          {leases.leases.length === 0 ? (
            <p>No leases.</p>
          ) : (
            <Table
              label="DHCP leases"
              columns={['MAC', 'Address', 'Hostname']}
              rows={leases.leases}
              rowKey={(lease) => lease.ip}
              cells={(lease) => [lease.mac, `${lease.ip}/${lease.prefix}`, lease.hostname]}
            />
          )}
        </section>
      )}
    </main>
  );
}

interface FeedItem {
  name: string;
  at: string;
  data: Record<string, unknown>;
}

/** Every event family of the fleet as it arrives (`kind=all`), newest first. */
export function EventsPage({ api }: { api: Api }) {
  const [items, setItems] = useState<FeedItem[]>([]);
  const [error, setError] = useState('');
  useEffect(() => {
    const abort = new AbortController();
    void api
      .events('kind=all', (name, data) => setItems((current) => [{ name, at: new Date().toLocaleTimeString(), data: data as Record<string, unknown> }, ...current].slice(0, 500)), abort.signal)
      .catch((failure: unknown) => {
        if (!abort.signal.aborted) setError(`event stream: ${errorText(failure)}`);
      });
    return () => abort.abort();
  }, [api]);
  const describe = (data: Record<string, unknown>) => ['node', 'name', 'type', 'state', 'reason'].flatMap((key) => (data[key] === undefined ? [] : [`${key}=${String(data[key])}`])).join(' ');
  return (
    <main>
      <section aria-labelledby="events-title">
        <h2 id="events-title">Events (live)</h2>
        <ErrorLine error={error} />
        <Table label="Events" columns={['Received', 'Family', 'Event']} rows={items} rowKey={(_item, index) => items.length - index} cells={(item) => [item.at, item.name, describe(item.data)]} />
      </section>
    </main>
  );
}
