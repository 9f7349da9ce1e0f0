import { useEffect, useState } from 'preact/hooks';
import { type Abilities, type Api, type DomainRef, errorText } from './api.js';
import type { Domain, DomainState, DomainStatePut, LifecycleEvent } from '@virtbus/api-contract';
import { DevicesPanel, MigratePanel, SnapshotsPanel, StatsPanel } from './panels.js';
import { Screen } from './screen.js';
import { SerialConsole } from './terminal.js';
import { ErrorLine, Table } from './ui.js';

/** The state actions (libvirt's lifecycle verbs), with the states each one applies to. */
const ACTIONS: (Pick<DomainStatePut, 'action' | 'force'> & { label: string; when: DomainState[] })[] = [
  { label: 'Start', action: 'start', when: ['shutoff', 'crashed'] },
  { label: 'Shut down', action: 'shutdown', when: ['running'] },
  { label: 'Force shutdown', action: 'shutdown', force: true, when: ['running', 'paused'] },
  { label: 'Reboot', action: 'reboot', when: ['running'] },
  { label: 'Reset', action: 'reset', when: ['running'] },
  { label: 'Suspend', action: 'suspend', when: ['running'] },
  { label: 'Resume', action: 'resume', when: ['paused'] },
  { label: 'Destroy', action: 'destroy', when: ['running', 'paused', 'pmsuspended', 'crashed'] },
];

type Tab = 'serial' | 'screen' | 'stats' | 'devices' | 'snapshots' | 'migrate' | 'events';

/** Tabs in a tablist: arrow keys move between them (WAI-ARIA tabs pattern). */
export function Tabs<T extends string>({ tabs, current, onSelect, label }: { tabs: { id: T; label: string }[]; current: T; onSelect: (id: T) => void; label: string }) {
  const move = (event: KeyboardEvent, index: number) => {
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    const next = tabs[(index + step + tabs.length) % tabs.length]!;
    onSelect(next.id);
    document.getElementById(`tab-${next.id}`)?.focus();
  };
  return (
    <div role="tablist" aria-label={label} class="tabs">
      {tabs.map((tab, index) => (
        <button
          key={tab.id}
          id={`tab-${tab.id}`}
          role="tab"
          aria-selected={tab.id === current}
          aria-controls={`panel-${tab.id}`}
          tabIndex={tab.id === current ? 0 : -1}
          onClick={() => onSelect(tab.id)}
          onKeyDown={(event) => move(event, index)}
        >
          {tab.label}
        </button>
      ))}
    </div>
  );
}

export function DomainPage({ api, domainRef, can }: { api: Api; domainRef: DomainRef; can: Abilities }) {
  const [domain, setDomain] = useState<Domain | undefined>();
  const [events, setEvents] = useState<LifecycleEvent[]>([]);
  const [error, setError] = useState('');
  const [tab, setTab] = useState<Tab>('serial');
  const [otherNodes, setOtherNodes] = useState<string[]>([]);

  const reload = () =>
    api.call<Domain>('GET', api.domainPath(domainRef)).then(setDomain, (failure: unknown) => setError(errorText(failure)));

  useEffect(() => {
    const abort = new AbortController();
    // events that arrive while the domain is read: that answer may predate them, so they are applied again on top of it
    let arrived: LifecycleEvent[] | undefined;
    let read = false;
    // the domain is read once the event stream is open (or failed): a change between a read first and the stream was lost
    const firstRead = () => {
      if (read) return;
      read = true;
      const during: LifecycleEvent[] = (arrived = []);
      void api
        .call<Domain>('GET', api.domainPath(domainRef))
        .then(
          (found) => setDomain(during.reduce((domain, event) => ({ ...domain, state: event.state, reason: event.reason }), found)),
          (failure: unknown) => setError(errorText(failure)),
        )
        .finally(() => (arrived = undefined));
    };
    void api.nodes().then(
      (list) => setOtherNodes(list.nodes.filter((node) => node.online && node.node !== domainRef.node).map((node) => node.node)),
      () => undefined,
    );
    // since=0: this domain's past events first, then live ones
    void api
      .events(
        `kind=domain&domain=${domainRef.uuid}&since=0`,
        (name, data) => {
          if (name !== 'lifecycle') return;
          const event = data as LifecycleEvent;
          setEvents((current) => [event, ...current].slice(0, 200));
          // after a migration the stream holds both nodes' events of this uuid: only this node's set its state here
          if (event.node !== domainRef.node) return;
          arrived?.push(event);
          setDomain((current) => (current ? { ...current, state: event.state, reason: event.reason } : current));
        },
        abort.signal,
        firstRead,
      )
      .catch((failure: unknown) => {
        if (abort.signal.aborted) return;
        firstRead();
        setError(`event stream: ${errorText(failure)}`);
      });
    return () => abort.abort();
  }, [api, domainRef.node, domainRef.uuid]);

  const act = async (action: DomainStatePut['action'], force?: boolean) => {
    setError('');
    try {
      await api.changeState(domainRef, action, force ? { force } : {});
      await reload();
    } catch (failure) {
      setError(errorText(failure));
    }
  };

  if (!domain) return <main>{error ? <p class="error" role="alert">{error}</p> : <p>Loading…</p>}</main>;
  const running = domain.state === 'running' || domain.state === 'paused';
  const tabs: { id: Tab; label: string }[] = [
    { id: 'serial', label: 'Serial console' },
    ...(domain.config.graphics ? [{ id: 'screen' as const, label: 'Screen' }] : []),
    { id: 'stats', label: 'Charts' },
    { id: 'devices', label: 'Disks and NICs' },
    { id: 'snapshots', label: 'Snapshots' },
    ...(can.admin ? [{ id: 'migrate' as const, label: 'Migrate' }] : []),
    { id: 'events', label: 'Events' },
  ];
  return (
    <main>
      <section aria-labelledby="domain-title">
        <h2 id="domain-title">
          {domain.name} <small>on {domain.node}</small>
        </h2>
        <p>
          State:{' '}
          <strong class={`state-${domain.state}`} data-testid="domain-state">
            {domain.state}
          </strong>{' '}
          ({domain.reason}) · {domain.driver} · {domain.config.vcpus} vCPU · {domain.config.memory} MiB
        </p>
        {can.operate && (
          <div role="group" aria-label="Actions" class="actions">
            {ACTIONS.map((item) => (
              <button key={item.label} onClick={() => void act(item.action, item.force)} disabled={!item.when.includes(domain.state)}>
                {item.label}
              </button>
            ))}
          </div>
        )}
        <ErrorLine error={error} />
      </section>
      <section>
        <Tabs tabs={tabs} current={tab} onSelect={setTab} label="Domain views" />
        <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
          {tab === 'serial' && (running && can.operate ? <SerialConsole api={api} domain={domainRef} name={domain.name} /> : <p>The serial console needs a running domain and the operator role.</p>)}
          {tab === 'screen' && (running && can.operate ? <Screen api={api} domain={domainRef} name={domain.name} /> : <p>The screen needs a running domain and the operator role.</p>)}
          {tab === 'stats' && (running ? <StatsPanel api={api} domain={domainRef} /> : <p>Charts need a running domain.</p>)}
          {tab === 'devices' && <DevicesPanel api={api} domain={domain} canWrite={can.admin} onChanged={reload} />}
          {tab === 'snapshots' && <SnapshotsPanel api={api} domain={domainRef} can={can} onChanged={reload} />}
          {tab === 'migrate' && <MigratePanel api={api} domain={domainRef} nodes={otherNodes} />}
          {tab === 'events' && (
            <Table label="Events of this domain" columns={['Type', 'State', 'Reason']} rows={events} rowKey={(_event, index) => events.length - index} cells={(event) => [event.type, event.state, event.reason]} />
          )}
        </div>
      </section>
    </main>
  );
}
