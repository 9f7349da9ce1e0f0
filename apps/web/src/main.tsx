import RFB from '@novnc/novnc';
import { render, type ComponentChildren } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Api, ApiFailure, type FleetDomain, type NodeSummary } from './api.js';

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
      setError(failure instanceof ApiFailure ? failure.message : String(failure));
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
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </section>
    </main>
  );
}

function Screen({ api, domain, onClose }: { api: Api; domain: FleetDomain; onClose: () => void }) {
  const target = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('connecting');
  useEffect(() => {
    if (!target.current) return;
    const rfb = new RFB(target.current, api.vncUrl(domain), { wsProtocols: api.wsProtocols(), shared: true });
    rfb.scaleViewport = true;
    rfb.addEventListener('connect', () => setStatus('connected'));
    rfb.addEventListener('disconnect', () => setStatus('disconnected'));
    return () => rfb.disconnect();
  }, [api, domain.node, domain.uuid]);
  return (
    <section aria-label={`Screen of ${domain.name}`}>
      <h2>
        Screen of {domain.name} <small data-testid="vnc-status">({status})</small> <button onClick={onClose}>Close</button>
      </h2>
      <div class="screen" ref={target} data-testid="vnc-screen" />
    </section>
  );
}

function Fleet({ api, onSignOut }: { api: Api; onSignOut: () => void }) {
  const [nodes, setNodes] = useState<NodeSummary[]>([]);
  const [domains, setDomains] = useState<FleetDomain[]>([]);
  const [more, setMore] = useState<string | undefined>();
  const [error, setError] = useState('');
  const [screen, setScreen] = useState<FleetDomain | undefined>();
  const [live, setLive] = useState(false);

  const refresh = useMemo(
    () => async () => {
      try {
        const [nodeList, domainList] = await Promise.all([api.nodes(), api.domains()]);
        setNodes(nodeList.nodes);
        setDomains(domainList.domains);
        setMore(domainList.continue);
      } catch (failure) {
        setError(failure instanceof ApiFailure ? failure.message : String(failure));
      }
    },
    [api],
  );

  useEffect(() => {
    const abort = new AbortController();
    void refresh();
    void api
      .follow((event) => {
        setLive(true);
        void api.nodes().then((list) => setNodes(list.nodes), () => undefined);
        setDomains((current) => {
          const known = current.some((domain) => domain.node === event.node && domain.uuid === event.uuid);
          if (event.type === 'UNDEFINED') return current.filter((domain) => !(domain.node === event.node && domain.uuid === event.uuid));
          if (!known) {
            void refresh();
            return current;
          }
          return current.map((domain) => (domain.node === event.node && domain.uuid === event.uuid ? { ...domain, state: event.state, reason: event.reason } : domain));
        });
      }, abort.signal)
      .catch((failure: unknown) => {
        if (!abort.signal.aborted) setError(`event stream: ${String(failure)}`);
      });
    return () => abort.abort();
  }, [api, refresh]);

  const loadMore = async () => {
    if (!more) return;
    try {
      const page = await api.domains(more);
      setDomains((current) => [...current, ...page.domains]);
      setMore(page.continue);
    } catch (failure) {
      setError(failure instanceof ApiFailure ? failure.message : String(failure));
    }
  };

  const act = async (domain: FleetDomain, action: string) => {
    setError('');
    try {
      await api.changeState(domain, action);
    } catch (failure) {
      setError(failure instanceof ApiFailure ? failure.message : String(failure));
    }
  };

  return (
    <>
      <header>
        <h1>virtbus</h1>
        <span>{live ? 'live' : ''}</span>
        <button onClick={onSignOut}>Sign out</button>
      </header>
      <main>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <Listing title="Nodes" columns={['Node', 'Online', 'Drivers', 'Domains (running / total)']}>
          {nodes.map((node) => (
            <tr key={node.node} data-testid={`node-${node.node}`}>
              <td>{node.node}</td>
              <td>{node.online ? 'yes' : 'no'}</td>
              <td>{node.drivers?.join(', ')}</td>
              <td>{node.domains ? `${node.domains.running} / ${node.domains.total}` : ''}</td>
            </tr>
          ))}
        </Listing>
        <Listing title="Domains" columns={['Name', 'Node', 'Driver', 'State', 'Actions']} footer={more && <button onClick={() => void loadMore()}>Load more</button>}>
          {domains.map((domain) => (
            <tr key={`${domain.node}/${domain.uuid}`} data-testid={`domain-${domain.name}`}>
              <td>{domain.name}</td>
              <td>{domain.node}</td>
              <td>{domain.driver}</td>
              <td class={`state-${domain.state}`} data-testid="state">
                {domain.state}
              </td>
              <td>
                <button onClick={() => void act(domain, 'start')} disabled={domain.state !== 'shutoff'} aria-label={`Start ${domain.name}`}>
                  Start
                </button>
                <button onClick={() => void act(domain, 'destroy')} disabled={domain.state === 'shutoff'} aria-label={`Stop ${domain.name}`}>
                  Stop
                </button>
                <button onClick={() => setScreen(domain)} disabled={domain.state !== 'running'} aria-label={`Screen of ${domain.name}`}>
                  Screen
                </button>
              </td>
            </tr>
          ))}
        </Listing>
        {screen && <Screen key={`${screen.node}/${screen.uuid}`} api={api} domain={screen} onClose={() => setScreen(undefined)} />}
      </main>
    </>
  );
}

/** A titled table section: column headings, the rows, and what follows the table. */
function Listing({ title, columns, footer, children }: { title: string; columns: string[]; footer?: ComponentChildren; children: ComponentChildren }) {
  return (
    <section>
      <h2>{title}</h2>
      <table>
        <thead>
          <tr>
            {columns.map((column) => (
              <th key={column} scope="col">
                {column}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
      {footer}
    </section>
  );
}

function App() {
  const stored = sessionStorage.getItem(TOKEN_KEY);
  const [api, setApi] = useState<Api | undefined>(stored === null ? undefined : new Api(stored));
  if (!api) return <SignIn onSignedIn={setApi} />;
  return (
    <Fleet
      api={api}
      onSignOut={() => {
        sessionStorage.removeItem(TOKEN_KEY);
        setApi(undefined);
      }}
    />
  );
}

render(<App />, document.getElementById('app')!);
