import { useEffect, useState } from 'preact/hooks';
import { type Api, errorText, type NodeSummary } from './api.js';

const nodePath = (node: string) => `/v1/nodes/${encodeURIComponent(node)}`;
const bytes = (value: number) => (value >= 2 ** 30 ? `${(value / 2 ** 30).toFixed(1)} GiB` : `${(value / 2 ** 20).toFixed(1)} MiB`);

function ErrorLine({ error }: { error: string }) {
  return error ? (
    <p class="error" role="alert">
      {error}
    </p>
  ) : null;
}

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

interface Pool {
  name: string;
  type: string;
  state: string;
  capacityBytes: number;
  availableBytes: number;
}
interface Volume {
  name: string;
  format: string;
  capacityBytes: number;
  allocationBytes: number;
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
        const body = JSON.parse(request.responseText) as { code: string; message: string };
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
  const [pools, setPools] = useState<Pool[]>([]);
  const [pool, setPool] = useState('');
  const [volumes, setVolumes] = useState<Volume[]>([]);
  const [error, setError] = useState('');
  const [file, setFile] = useState<File | undefined>();
  const [volumeName, setVolumeName] = useState('');
  const [progress, setProgress] = useState<number | undefined>();

  const loadPools = async () => {
    if (!node) return;
    const list = await api.call<{ pools: Pool[] }>('GET', `${nodePath(node)}/storage-pools?limit=1000`);
    setPools(list.pools);
    setPool((current) => (list.pools.some((item) => item.name === current) ? current : (list.pools[0]?.name ?? '')));
  };
  const loadVolumes = async () => {
    if (!node || !pool) return setVolumes([]);
    setVolumes((await api.call<{ volumes: Volume[] }>('GET', `${nodePath(node)}/storage-pools/${encodeURIComponent(pool)}/volumes?limit=1000`)).volumes);
  };
  useEffect(() => void loadPools().catch((failure: unknown) => setError(errorText(failure))), [api, node]);
  useEffect(() => void loadVolumes().catch((failure: unknown) => setError(errorText(failure))), [api, node, pool]);

  const poolAction = async (name: string, action: string) => {
    setError('');
    try {
      await api.call('PUT', `${nodePath(node)}/storage-pools/${encodeURIComponent(name)}/state`, { action });
      await loadPools();
    } catch (failure) {
      setError(errorText(failure));
    }
  };
  const upload = async (event: Event) => {
    event.preventDefault();
    if (!file) return;
    setError('');
    setProgress(0);
    try {
      const name = volumeName || file.name;
      await uploadFile(api, `${nodePath(node)}/storage-pools/${encodeURIComponent(pool)}/volumes/${encodeURIComponent(name)}/content?create=true`, file, setProgress);
      setProgress(100);
      await loadVolumes();
    } catch (failure) {
      setError(errorText(failure));
    }
  };
  // a link cannot carry the token header: fetch the bytes, then save them from a blob URL
  const download = async (volume: Volume) => {
    setError('');
    try {
      const response = await fetch(`${nodePath(node)}/storage-pools/${encodeURIComponent(pool)}/volumes/${encodeURIComponent(volume.name)}/content`, {
        headers: api.token ? { authorization: `Bearer ${api.token}` } : {},
      });
      if (!response.ok) throw new Error(`download: ${response.status}`);
      const url = URL.createObjectURL(await response.blob());
      const link = Object.assign(document.createElement('a'), { href: url, download: volume.name });
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (failure) {
      setError(errorText(failure));
    }
  };

  return (
    <main>
      <section aria-labelledby="storage-title">
        <h2 id="storage-title">Storage pools</h2>
        <NodeSelect node={node} nodes={nodes} onChange={setNode} />
        <ErrorLine error={error} />
        <table aria-label="Storage pools">
          <thead>
            <tr>
              <th scope="col">Pool</th>
              <th scope="col">Type</th>
              <th scope="col">State</th>
              <th scope="col">Available / capacity</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {pools.map((item) => (
              <tr key={item.name} data-testid={`pool-${item.name}`} class={item.name === pool ? 'selected' : undefined}>
                <td>
                  <button class="link" onClick={() => setPool(item.name)} aria-label={`Volumes of ${item.name}`}>
                    {item.name}
                  </button>
                </td>
                <td>{item.type}</td>
                <td>{item.state}</td>
                <td>
                  {bytes(item.availableBytes)} / {bytes(item.capacityBytes)}
                </td>
                <td>
                  {canWrite && (
                    <>
                      <button onClick={() => void poolAction(item.name, 'start')} disabled={item.state === 'running'} aria-label={`Start pool ${item.name}`}>
                        Start
                      </button>
                      <button onClick={() => void poolAction(item.name, 'stop')} disabled={item.state !== 'running'} aria-label={`Stop pool ${item.name}`}>
                        Stop
                      </button>
                      <button onClick={() => void poolAction(item.name, 'refresh')} disabled={item.state !== 'running'} aria-label={`Refresh pool ${item.name}`}>
                        Refresh
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      {pool && (
        <section aria-labelledby="volumes-title">
          <h2 id="volumes-title">Volumes of {pool}</h2>
          <table aria-label="Volumes">
            <thead>
              <tr>
                <th scope="col">Volume</th>
                <th scope="col">Format</th>
                <th scope="col">Capacity</th>
                <th scope="col">Allocation</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {volumes.map((volume) => (
                <tr key={volume.name} data-testid={`volume-${volume.name}`}>
                  <td>{volume.name}</td>
                  <td>{volume.format}</td>
                  <td>{bytes(volume.capacityBytes)}</td>
                  <td>{bytes(volume.allocationBytes)}</td>
                  <td>
                    {canWrite && (
                      <button onClick={() => void download(volume)} aria-label={`Download ${volume.name}`}>
                        Download
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {canWrite && (
            <form class="inline" onSubmit={(event) => void upload(event)}>
              <label>
                Image file <input type="file" onChange={(event) => setFile((event.target as HTMLInputElement).files?.[0])} />
              </label>
              <label>
                Volume name <input value={volumeName} placeholder="the file's name" onInput={(event) => setVolumeName((event.target as HTMLInputElement).value)} />
              </label>
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

interface Network {
  name: string;
  mode: string;
  state: string;
  bridge?: string;
  ipv4?: { address: string; prefix: number };
}
interface Lease {
  mac?: string;
  ip: string;
  prefix: number;
  hostname?: string;
}

/** Networks of a node: start/stop and each one's DHCP leases. */
export function NetworksPage({ api, canWrite }: { api: Api; canWrite: boolean }) {
  const [node, setNode, nodes] = useNode(api);
  const [networks, setNetworks] = useState<Network[]>([]);
  const [leases, setLeases] = useState<{ network: string; leases: Lease[] } | undefined>();
  const [error, setError] = useState('');
  const load = async () => {
    if (node) setNetworks((await api.call<{ networks: Network[] }>('GET', `${nodePath(node)}/networks?limit=1000`)).networks);
  };
  useEffect(() => void load().catch((failure: unknown) => setError(errorText(failure))), [api, node]);
  const act = async (name: string, action: string) => {
    setError('');
    try {
      await api.call('PUT', `${nodePath(node)}/networks/${encodeURIComponent(name)}/state`, { action });
      await load();
    } catch (failure) {
      setError(errorText(failure));
    }
  };
  const showLeases = async (name: string) => {
    setError('');
    try {
      setLeases({ network: name, leases: (await api.call<{ leases: Lease[] }>('GET', `${nodePath(node)}/networks/${encodeURIComponent(name)}/leases`)).leases });
    } catch (failure) {
      setError(errorText(failure));
    }
  };
  return (
    <main>
      <section aria-labelledby="networks-title">
        <h2 id="networks-title">Networks</h2>
        <NodeSelect node={node} nodes={nodes} onChange={setNode} />
        <ErrorLine error={error} />
        <table aria-label="Networks">
          <thead>
            <tr>
              <th scope="col">Network</th>
              <th scope="col">Mode</th>
              <th scope="col">State</th>
              <th scope="col">IPv4</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {networks.map((network) => (
              <tr key={network.name} data-testid={`network-${network.name}`}>
                <td>{network.name}</td>
                <td>{network.mode}</td>
                <td data-testid="state">{network.state}</td>
                <td>{network.ipv4 ? `${network.ipv4.address}/${network.ipv4.prefix}` : ''}</td>
                <td>
                  {canWrite && (
                    <>
                      <button onClick={() => void act(network.name, 'start')} disabled={network.state === 'active'} aria-label={`Start network ${network.name}`}>
                        Start
                      </button>
                      <button onClick={() => void act(network.name, 'stop')} disabled={network.state !== 'active'} aria-label={`Stop network ${network.name}`}>
                        Stop
                      </button>
                    </>
                  )}
                  <button onClick={() => void showLeases(network.name)} aria-label={`DHCP leases of ${network.name}`}>
                    Leases
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      {leases && (
        <section aria-labelledby="leases-title">
          <h2 id="leases-title">DHCP leases of {leases.network}</h2>
          {leases.leases.length === 0 ? (
            <p>No leases.</p>
          ) : (
            <table aria-label="DHCP leases">
              <thead>
                <tr>
                  <th scope="col">MAC</th>
                  <th scope="col">Address</th>
                  <th scope="col">Hostname</th>
                </tr>
              </thead>
              <tbody>
                {leases.leases.map((lease) => (
                  <tr key={lease.ip}>
                    <td>{lease.mac}</td>
                    <td>
                      {lease.ip}/{lease.prefix}
                    </td>
                    <td>{lease.hostname}</td>
                  </tr>
                ))}
              </tbody>
            </table>
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
        <table aria-label="Events">
          <thead>
            <tr>
              <th scope="col">Received</th>
              <th scope="col">Family</th>
              <th scope="col">Event</th>
            </tr>
          </thead>
          <tbody aria-live="polite">
            {items.map((item, index) => (
              <tr key={items.length - index}>
                <td>{item.at}</td>
                <td>{item.name}</td>
                <td>{describe(item.data)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </main>
  );
}
