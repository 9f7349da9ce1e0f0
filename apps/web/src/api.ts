/** The gateway's public HTTP API as the UI uses it: same origin, bearer token from the sign-in. */
import type { CallerIdentity, DomainStatePut, ErrorBody, FleetDomain, FleetDomainList, LifecycleEvent, NodeInfo, NodeList, NodeSummary } from '@virtbus/api-contract';

/** The part of `GET /v1/nodes/:node` (node.info) the fleet shows. */
export type NodeHardware = Pick<NodeInfo, 'cpu' | 'memory' | 'numa'>;

/** The domain a page is about: its node and UUID. */
export type DomainRef = Pick<FleetDomain, 'node' | 'uuid'>;

/** The gateway's error body, or one the UI makes when a reply has none (code HTTP). */
export type ApiError = ErrorBody | (Omit<ErrorBody, 'code'> & { code: 'HTTP' });

export class ApiFailure extends Error {
  constructor(readonly body: ApiError) {
    super(`${body.code}: ${body.message}`);
  }
}

/** What to show for a failed call. */
export const errorText = (failure: unknown): string => (failure instanceof ApiFailure ? failure.message : String(failure));

/** WebSocket subprotocol that carries the token, since a browser cannot set headers on a WebSocket. */
export const BEARER_PROTOCOL_PREFIX = 'virtbus.bearer.';

/** Items per list call: a fleet of 100,000 domains is read a page at a time. */
export const PAGE_SIZE = 100;

export class Api {
  constructor(readonly token: string) {}

  private headers(json: boolean): Record<string, string> {
    return { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...(json ? { 'content-type': 'application/json' } : {}) };
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(path, { method, headers: this.headers(body !== undefined), ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await response.text();
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (!response.ok) throw new ApiFailure((parsed as ApiError | undefined) ?? { code: 'HTTP', message: response.statusText, status: response.status });
    return parsed as T;
  }

  /** Every node, page after page (a fleet has at most a few thousand). */
  async nodes(): Promise<{ nodes: NodeSummary[] }> {
    const nodes: NodeSummary[] = [];
    let token: string | undefined;
    do {
      const page = await this.call<NodeList>('GET', `/v1/nodes?limit=${PAGE_SIZE}${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
      nodes.push(...page.nodes);
      token = page.continue;
    } while (token);
    return { nodes };
  }

  /** A node's CPUs, memory and NUMA cells. */
  nodeInfo(node: string): Promise<NodeHardware> {
    return this.call('GET', `/v1/nodes/${encodeURIComponent(node)}`);
  }

  /** One page of the fleet's domains, filtered and sorted by the gateway (`query`: search, sort, order); `continue` names the next one. */
  domains(query = '', token?: string): Promise<FleetDomainList> {
    return this.call('GET', `/v1/domains?limit=${PAGE_SIZE}${query ? `&${query}` : ''}${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
  }

  /** `/v1/nodes/:node/domains/:uuid` plus `rest`. */
  domainPath(domain: DomainRef, rest = ''): string {
    return `/v1/nodes/${encodeURIComponent(domain.node)}/domains/${domain.uuid}${rest}`;
  }

  changeState(domain: DomainRef, action: DomainStatePut['action'], options: Pick<DomainStatePut, 'force'> = {}): Promise<unknown> {
    return this.call('PUT', this.domainPath(domain, '/state'), { action, ...options });
  }

  /** Domain lifecycle events from the SSE stream; ends when `signal` aborts. */
  follow(onEvent: (event: LifecycleEvent) => void, signal: AbortSignal): Promise<void> {
    return this.events('kind=domain', (name, data) => {
      if (name === 'lifecycle') onEvent(data as LifecycleEvent);
    }, signal);
  }

  /** Any SSE event stream of `GET /v1/events?<query>`, read with fetch so the token goes in a header. */
  async events(query: string, onEvent: (name: string, data: unknown) => void, signal: AbortSignal): Promise<void> {
    const response = await fetch(`/v1/events?${query}`, { headers: { ...this.headers(false), accept: 'text/event-stream' }, signal });
    if (!response.ok || !response.body) throw new ApiFailure({ code: 'HTTP', message: `events: ${response.status}`, status: response.status });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const field = (name: string) =>
          block
            .split('\n')
            .filter((line) => line.startsWith(`${name}:`))
            .map((line) => line.slice(name.length + 1).replace(/^ /, ''))
            .join('\n');
        const data = field('data');
        if (data) onEvent(field('event') || 'message', JSON.parse(data));
      }
    }
  }

  /** WebSocket URL of a domain's `vnc` or `console` stream. */
  socketUrl(domain: DomainRef, stream: 'vnc' | 'console'): string {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${location.host}${this.domainPath(domain, `/${stream}`)}`;
  }

  /** `binary` first: the server picks the first offered subprotocol, noVNC expects it. */
  wsProtocols(): string[] {
    return this.token ? ['binary', `${BEARER_PROTOCOL_PREFIX}${this.token}`] : ['binary'];
  }
}

const RANK: Record<CallerIdentity['role'], number> = { 'read-only': 0, operator: 1, admin: 2 };

/** What a role may do in the UI: operators run domains and open consoles; admins also change definitions, storage and networks. */
export const abilitiesOf = (role: CallerIdentity['role']) => ({ operate: RANK[role] >= RANK.operator, admin: RANK[role] >= RANK.admin });
export type Abilities = ReturnType<typeof abilitiesOf>;
