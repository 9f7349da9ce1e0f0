import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { type Abilities, abilitiesOf, Api, ApiFailure, type DomainRef, errorText, type NodeHardware } from './api.js';
import type { CallerIdentity, Domain, DomainStatePut, FleetDomain, NodeSummary } from '@virtbus/api-contract';
import { CreateDomain } from './create.js';
import { DomainPage } from './domain.js';
import { EventsPage, NetworksPage, StoragePage } from './pages.js';
import { fleetOrder, fleetQuery, fleetView, nextSort, type Sort, type SortColumn } from './fleet-view.js';
import { Cell, ErrorLine, RowActions, Table, TextField } from './ui.js';

const TOKEN_KEY = 'virtbus.token';

function SignIn({ onSignedIn }: { onSignedIn: (api: Api) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const submit = async (event: Event) => {
    event.preventDefault();
    const api = new Api(token.trim());
    try {
      await api.nodes();
      sessionStorage.setItem(TOKEN_KEY, api.token);
      onSignedIn(api);
    } catch (failure) {
      setError(errorText(failure));
    }
  };
  // no token: the gateway knows the caller by the TLS client certificate the browser presented
  const byCertificate = async () => {
    const api = new Api('');
    try {
      await api.call<CallerIdentity>('GET', '/v1/whoami');
      sessionStorage.setItem(TOKEN_KEY, '');
      onSignedIn(api);
    } catch (failure) {
      const refused = failure instanceof ApiFailure && failure.body.code === 'UNAUTHORIZED';
      setError(refused ? `The browser presented no client certificate the gateway accepts (${errorText(failure)})` : errorText(failure));
    }
  };
  return (
    <main>
      <section>
        <h2>Sign in</h2>
        <form class="signin" onSubmit={submit}>
          <label>
            Token
            <br />
            <input name="token" type="password" autocomplete="off" value={token} onInput={(event) => setToken((event.target as HTMLInputElement).value)} />
          </label>
          <button type="submit">Sign in</button>
        </form>
        <p>
          or with the TLS client certificate the browser presents:{' '}
          <button type="button" onClick={() => void byCertificate()}>
            Use a client certificate
          </button>
        </p>
        <ErrorLine error={error} />
      </section>
    </main>
  );
}

/** After an event, the node list is read again once this has passed (the agent's registry write follows within a second). */
const NODES_REREAD_MS = 1500;
/** The node list is read again this often without events (online/offline, counts). */
const NODES_REFRESH_MS = 10_000;

function Fleet({ api, can }: { api: Api; can: Abilities }) {
  const [nodes, setNodes] = useState<NodeSummary[]>([]);
  const [domains, setDomains] = useState<FleetDomain[]>([]);
  const [more, setMore] = useState<string | undefined>();
  // the event handler runs outside renders: it reads the latest rows and paging token here
  const moreRef = useRef(more);
  moreRef.current = more;
  const domainsRef = useRef(domains);
  domainsRef.current = domains;
  const [error, setError] = useState('');
  const [live, setLive] = useState(false);
  const [creating, setCreating] = useState(false);
  const [notice, setNotice] = useState('');
  const [hardware, setHardware] = useState<Record<string, NodeHardware>>({});
  // node.info is asked once per node: the node list is re-read on every event
  const asked = useRef(new Set<string>());
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState<Sort | undefined>();
  const sortRef = useRef(sort);
  sortRef.current = sort;
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  // the gateway filters and sorts the whole fleet: the loaded rows are the first pages of that answer
  const query = fleetQuery(filter, sort);
  const queryRef = useRef(query);
  queryRef.current = query;

  // an answer to an older filter or sort is dropped
  const loadDomains = async (token?: string) => {
    const asked = queryRef.current;
    try {
      const page = await api.domains(asked, token);
      if (asked !== queryRef.current) return;
      setDomains((current) => (token ? [...current, ...page.domains] : page.domains));
      setMore(page.continue);
    } catch (failure) {
      setError(errorText(failure));
    }
  };

  useEffect(() => {
    void loadDomains();
  }, [api, query]);

  useEffect(() => {
    const abort = new AbortController();
    void api.nodes().then((list) => setNodes(list.nodes), (failure: unknown) => setError(errorText(failure)));
    // an agent writes its domain counts to the registry up to a second after an event: one node read per burst, after it
    let nodesTimer: ReturnType<typeof setTimeout> | undefined;
    const readNodes = () => void api.nodes().then((list) => setNodes(list.nodes), () => undefined);
    const readNodesSoon = () => {
      nodesTimer ??= setTimeout(() => {
        nodesTimer = undefined;
        readNodes();
      }, NODES_REREAD_MS);
    };
    // liveness changes without any event (a node stops beating)
    const refresh = setInterval(readNodes, NODES_REFRESH_MS);
    abort.signal.addEventListener('abort', () => {
      clearTimeout(nodesTimer);
      clearInterval(refresh);
    });
    void api
      .follow((event) => {
        setLive(true);
        readNodesSoon();
        if (event.type === 'UNDEFINED') return setDomains((current) => current.filter((domain) => !sameDomain(domain, event)));
        setDomains((current) => current.map((domain) => (sameDomain(domain, event) ? { ...domain, state: event.state, reason: event.reason } : domain)));
        if (domainsRef.current.some((domain) => sameDomain(domain, event))) return;
        // a domain new to the table: read it from its node (the gateway's fleet index may not have it yet)
        void api.call<Domain>('GET', api.domainPath(event)).then(
          (found) =>
            setDomains((current) => {
              if (current.some((domain) => sameDomain(domain, found))) return current;
              const row: FleetDomain = { node: found.node, uuid: found.uuid, name: found.name, driver: found.driver, state: found.state, reason: found.reason, stateChangedAt: found.stateChangedAt };
              const at = current.findIndex((domain) => fleetOrder(sortRef.current)(row, domain) < 0);
              // past the last loaded row while more pages remain: Load more brings it
              if (at < 0 && moreRef.current) return current;
              return at < 0 ? [...current, row] : [...current.slice(0, at), row, ...current.slice(at)];
            }),
          () => undefined,
        );
      }, abort.signal)
      .catch((failure: unknown) => {
        if (!abort.signal.aborted) setError(`event stream: ${String(failure)}`);
      });
    return () => abort.abort();
  }, [api]);

  useEffect(() => {
    for (const node of nodes) {
      if (!node.online || asked.current.has(node.node)) continue;
      asked.current.add(node.node);
      void api.nodeInfo(node.node).then((info) => setHardware((current) => ({ ...current, [node.node]: info })), () => undefined);
    }
  }, [api, nodes]);

  const loadMore = () => more && loadDomains(more);

  const act = async (domain: FleetDomain, action: DomainStatePut['action']) => {
    setError('');
    try {
      await api.changeState(domain, action);
    } catch (failure) {
      setError(errorText(failure));
    }
  };

  const shown = fleetView(domains, filter, sort);
  const picked = shown.filter((domain) => selected.has(rowKeyOf(domain)));
  const allPicked = shown.length > 0 && picked.length === shown.length;
  const toggle = (domain: FleetDomain, on: boolean) =>
    setSelected((current) => {
      const next = new Set(current);
      if (on) next.add(rowKeyOf(domain));
      else next.delete(rowKeyOf(domain));
      return next;
    });
  const bulk = async (action: Extract<DomainStatePut['action'], 'start' | 'destroy'>) => {
    const targets = picked.filter((domain) => (action === 'start' ? domain.state === 'shutoff' : domain.state !== 'shutoff'));
    setError('');
    const failures: string[] = [];
    // a few calls at a time: a selection may hold a whole page
    for (let at = 0; at < targets.length; at += BULK_PARALLEL) {
      const results = await Promise.allSettled(targets.slice(at, at + BULK_PARALLEL).map((domain) => api.changeState(domain, action)));
      results.forEach((result, index) => result.status === 'rejected' && failures.push(`${targets[at + index]!.name}: ${errorText(result.reason)}`));
    }
    if (failures.length) setError(failures.join('; '));
    setSelected(new Set());
  };
  const header = (label: string, column: SortColumn) =>
    new Cell(
      { 'aria-sort': sort?.column === column ? (sort.descending ? 'descending' : 'ascending') : 'none' },
      <>
        <button class="sort" onClick={() => setSort(nextSort(sort, column))}>
          {label}
        </button>
        {sort?.column === column && <span aria-hidden="true">{sort.descending ? ' ▼' : ' ▲'}</span>}
      </>,
    );

  return (
    <>
      <main>
        <p class="live" aria-live="polite">
          {live ? 'live' : ''}
        </p>
        <ErrorLine error={error} />
        <section>
          <h2>Nodes</h2>
          <Table
            label="Nodes"
            columns={['Node', 'Online', 'Drivers', 'Domains (running / total)', 'CPUs', 'Memory', 'NUMA cells']}
            rows={nodes}
            rowKey={(node) => node.node}
            testId="node"
            cells={(node) => [node.node, node.online ? 'yes' : 'no', node.drivers?.join(', '), node.domains ? `${node.domains.running} / ${node.domains.total}` : '',
              hardware[node.node]?.cpu.count,
              hardware[node.node] && `${(hardware[node.node]!.memory.totalBytes / 2 ** 30).toFixed(1)} GiB`,
              hardware[node.node]?.numa.length,
            ]}
          />
        </section>
        <section>
          <h2>
            Domains{' '}
            {can.admin && (
              <button onClick={() => setCreating(!creating)} aria-expanded={creating}>
                {creating ? 'Cancel' : 'Create domain'}
              </button>
            )}
          </h2>
          {notice && <p role="status">{notice}</p>}
          {creating && (
            <CreateDomain
              api={api}
              nodes={nodes}
              onCreated={(created) => {
                setCreating(false);
                // the row arrives with the DEFINED event on the stream
                setNotice(`Defined ${created.uuid} on ${created.node}`);
              }}
            />
          )}
          <p class="toolbar">
            <TextField label="Filter" value={filter} onValue={setFilter} placeholder="name, node or state" type="search" />
            {can.operate && (
              <>
                {' '}
                <button onClick={() => void bulk('start')} disabled={!picked.length}>
                  Start selected
                </button>{' '}
                <button onClick={() => void bulk('destroy')} disabled={!picked.length}>
                  Stop selected
                </button>{' '}
                <span>{picked.length ? `${picked.length} selected` : ''}</span>
              </>
            )}
          </p>
          <Table
            label="Domains"
            columns={[
              can.operate && <input type="checkbox" aria-label="Select all shown" checked={allPicked} onChange={() => setSelected(allPicked ? new Set() : new Set(shown.map(rowKeyOf)))} />,
              header('Name', 'name'),
              header('Node', 'node'),
              header('Driver', 'driver'),
              header('State', 'state'),
              can.operate && 'Actions',
            ]}
            rows={shown}
            rowKey={rowKeyOf}
            rowProps={(domain) => ({ 'data-testid': `domain-${domain.name}` })}
            cells={(domain) => [
              <input type="checkbox" aria-label={`Select ${domain.name}`} checked={selected.has(rowKeyOf(domain))} onChange={(event) => toggle(domain, (event.target as HTMLInputElement).checked)} />,
              <a href={domainHash(domain)}>{domain.name}</a>,
              domain.node,
              domain.driver,
              new Cell({ class: `state-${domain.state}`, 'data-testid': 'state' }, domain.state),
              <RowActions
                subject={domain.name}
                actions={[
                  { label: 'Start', disabled: domain.state !== 'shutoff', run: () => act(domain, 'start') },
                  { label: 'Stop', disabled: domain.state === 'shutoff', run: () => act(domain, 'destroy') },
                ]}
              />,
            ]}
          />
          {more && <button onClick={() => void loadMore()}>Load more</button>}
        </section>
      </main>
    </>
  );
}

const rowKeyOf = (domain: DomainRef) => `${domain.node}/${domain.uuid}`;
/** Bulk start/stop calls in flight at once. */
const BULK_PARALLEL = 8;
const sameDomain = (a: DomainRef, b: DomainRef) => a.node === b.node && a.uuid === b.uuid;

const domainHash = (domain: DomainRef) => `#/domains/${encodeURIComponent(domain.node)}/${domain.uuid}`;

const PAGES = ['fleet', 'storage', 'networks', 'events'] as const;
type Page = (typeof PAGES)[number];

/** The page named by the location hash: `#/` the fleet, `#/storage` etc., `#/domains/<node>/<uuid>` one domain. */
function useRoute(): { page: Page; domain?: DomainRef } {
  const read = () => {
    const match = /^#\/domains\/([^/]+)\/([0-9a-f-]{36})$/.exec(location.hash);
    if (match) return { page: 'fleet' as const, domain: { node: decodeURIComponent(match[1]!), uuid: match[2]! } };
    const page = PAGES.find((name) => location.hash === `#/${name}`);
    return { page: page ?? 'fleet' };
  };
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const changed = () => setRoute(read());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}

function App() {
  const stored = sessionStorage.getItem(TOKEN_KEY);
  const [api, setApi] = useState<Api | undefined>(stored === null ? undefined : new Api(stored));
  const route = useRoute();
  const [caller, setCaller] = useState<CallerIdentity | undefined>();
  useEffect(() => {
    setCaller(undefined);
    if (api) void api.call<CallerIdentity>('GET', '/v1/whoami').then(setCaller, () => setApi(undefined));
  }, [api]);
  if (!api) return <SignIn onSignedIn={setApi} />;
  if (!caller) return <main>Loading…</main>;
  const can = abilitiesOf(caller.role);
  return (
    <>
      <header>
        <h1>virtbus</h1>
        <nav aria-label="Pages">
          <a href="#/" aria-current={!route.domain && route.page === 'fleet' ? 'page' : undefined}>
            Fleet
          </a>
          <a href="#/storage" aria-current={route.page === 'storage' ? 'page' : undefined}>
            Storage
          </a>
          <a href="#/networks" aria-current={route.page === 'networks' ? 'page' : undefined}>
            Networks
          </a>
          <a href="#/events" aria-current={route.page === 'events' ? 'page' : undefined}>
            Events
          </a>
        </nav>
        <span data-testid="caller">
          {caller.name} ({caller.role})
        </span>
        <button
          onClick={() => {
            sessionStorage.removeItem(TOKEN_KEY);
            setApi(undefined);
          }}
        >
          Sign out
        </button>
      </header>
      {route.domain ? (
        <DomainPage key={`${route.domain.node}/${route.domain.uuid}`} api={api} domainRef={route.domain} can={can} />
      ) : route.page === 'storage' ? (
        <StoragePage api={api} canWrite={can.admin} />
      ) : route.page === 'networks' ? (
        <NetworksPage api={api} canWrite={can.admin} />
      ) : route.page === 'events' ? (
        <EventsPage api={api} />
      ) : (
        <Fleet api={api} can={can} />
      )}
    </>
  );
}

render(<App />, document.getElementById('app')!);
