import { useState } from 'preact/hooks';
import type { NodeSummary, StorageVolume } from '@virtbus/api-contract';
import type { Api, DomainRef } from './api.js';
import { fieldErrors } from './field-errors.js';

type Source = 'none' | 'image' | 'iso';

/** Define a domain: empty (e.g. the test driver), from an image volume with cloud-init user-data, or from an ISO with a blank disk. */
export function CreateDomain({ api, nodes, onCreated }: { api: Api; nodes: NodeSummary[]; onCreated: (domain: DomainRef) => void }) {
  const online = nodes.filter((node) => node.online);
  // node and driver stay '' until picked: the form may open before the node list arrives, and then offers what it brings
  const [chosen, setChosen] = useState({ node: '', name: '', driver: '', vcpus: '1', memory: '128', pool: '', volume: '', size: '10G', userData: '#cloud-config\n', vncPassword: '' });
  const [vnc, setVnc] = useState(false);
  const [source, setSource] = useState<Source>('none');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const node = online.some((candidate) => candidate.node === chosen.node) ? chosen.node : (online[0]?.node ?? '');
  const drivers = online.find((candidate) => candidate.node === node)?.drivers ?? ['test'];
  const values = { ...chosen, node, driver: drivers.includes(chosen.driver) ? chosen.driver : (drivers[0] ?? 'test') };
  const set = (field: keyof typeof values) => (event: Event) => setChosen({ ...chosen, [field]: (event.target as HTMLInputElement).value });
  const nodePath = `/v1/nodes/${encodeURIComponent(values.node)}`;

  const submit = async (event: Event) => {
    event.preventDefault();
    setErrors({});
    setBusy(true);
    const graphics = vnc ? { graphics: { type: 'vnc', ...(values.vncPassword ? { password: values.vncPassword } : {}) } } : {};
    const domain = { name: values.name, driver: values.driver, vcpus: Number(values.vcpus), memory: Number(values.memory), ...graphics };
    try {
      let created: DomainRef & { uuid: string };
      if (source === 'image') {
        created = await api.call('POST', `${nodePath}/domains/from-image`, {
          domain,
          image: { pool: values.pool, volume: values.volume },
          ...(values.size ? { rootSize: values.size } : {}),
          cloudInit: { userData: values.userData },
        });
      } else if (source === 'iso') {
        const disk = `${values.name}-disk`;
        // the pool picks the blank disk's format (qcow2 in dir pools, raw in logical ones); the ISO is raw, never the qcow2 default
        const blank = await api.call<Pick<StorageVolume, 'format'>>('POST', `${nodePath}/storage-pools/${encodeURIComponent(values.pool)}/volumes`, { name: disk, capacity: values.size });
        created = await api.call('POST', `${nodePath}/domains`, {
          ...domain,
          os: { boot: ['cdrom', 'hd'] },
          disks: [
            { source: { pool: values.pool, volume: values.volume }, device: 'cdrom', format: 'raw', bus: 'sata', readonly: true },
            { source: { pool: values.pool, volume: disk }, format: blank.format },
          ],
        });
      } else {
        created = await api.call('POST', `${nodePath}/domains`, domain);
      }
      onCreated({ node: values.node, uuid: created.uuid });
    } catch (failure) {
      setErrors(fieldErrors(failure));
    } finally {
      setBusy(false);
    }
  };

  const field = (name: keyof typeof values, label: string, input: preact.JSX.Element) => (
    <label>
      {label}
      {input}
      {errors[name] && (
        <span class="error field-error" id={`error-${name}`} role="alert">
          {errors[name]}
        </span>
      )}
    </label>
  );
  const text = (name: keyof typeof values, label: string, props: Record<string, unknown> = {}) =>
    field(name, label, <input name={name} value={values[name]} onInput={set(name)} aria-invalid={errors[name] ? true : undefined} aria-describedby={errors[name] ? `error-${name}` : undefined} {...props} />);

  return (
    <section aria-labelledby="create-title">
      <h2 id="create-title">Create a domain</h2>
      <form class="create" onSubmit={(event) => void submit(event)}>
        {field(
          'node',
          'Node',
          <select name="node" value={values.node} onChange={set('node')}>
            {online.map((node) => (
              <option key={node.node}>{node.node}</option>
            ))}
          </select>,
        )}
        {text('name', 'Name', { required: true })}
        {field(
          'driver',
          'Driver',
          <select name="driver" value={values.driver} onChange={set('driver')}>
            {drivers.map((driver) => (
              <option key={driver}>{driver}</option>
            ))}
          </select>,
        )}
        {text('vcpus', 'vCPUs', { type: 'number' })}
        {text('memory', 'Memory (MiB)', { type: 'number' })}
        <fieldset>
          <legend>Boot from</legend>
          {(
            [
              ['none', 'Nothing (define only)'],
              ['image', 'Image volume with cloud-init'],
              ['iso', 'ISO and a blank disk'],
            ] as const
          ).map(([id, label]) => (
            <label key={id} class="radio">
              <input type="radio" name="source" value={id} checked={source === id} onChange={() => setSource(id)} /> {label}
            </label>
          ))}
        </fieldset>
        {source !== 'none' && (
          <>
            {text('pool', 'Storage pool', { required: true })}
            {text('volume', source === 'image' ? 'Image volume' : 'ISO volume', { required: true })}
            {text('size', source === 'image' ? 'Root disk size' : 'Blank disk size')}
          </>
        )}
        <label class="radio">
          <input type="checkbox" name="vnc" checked={vnc} onChange={(event) => setVnc((event.target as HTMLInputElement).checked)} /> Graphics console (VNC)
        </label>
        {vnc && text('vncPassword', 'VNC password (optional, 8 characters at most)', { type: 'password', autocomplete: 'new-password', maxLength: 8 })}
        {source === 'image' && field('userData', 'cloud-init user-data', <textarea name="userData" rows={5} cols={50} value={values.userData} onInput={set('userData')} />)}
        <button type="submit" disabled={busy}>
          Create
        </button>
        {errors.form && (
          <p class="error" role="alert">
            {errors.form}
          </p>
        )}
      </form>
    </section>
  );
}
