/** The gateway's public HTTP API as the UI uses it: same origin, bearer token from the sign-in. */

export interface NodeSummary {
  node: string;
  online: boolean;
  version: string;
  drivers?: string[];
  domains?: { total: number; running: number };
}

export interface FleetDomain {
  node: string;
  uuid: string;
  name: string;
  driver: string;
  state: string;
  reason: string;
}

export interface LifecycleEvent {
  node: string;
  uuid: string;
  name: string;
  type: string;
  state: string;
  reason: string;
}

export interface ApiError {
  code: string;
  message: string;
  status: number;
}

export class ApiFailure extends Error {
  constructor(readonly body: ApiError) {
    super(`${body.code}: ${body.message}`);
  }
}

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
      const page = await this.call<{ nodes: NodeSummary[]; continue?: string }>('GET', `/v1/nodes?limit=${PAGE_SIZE}${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
      nodes.push(...page.nodes);
      token = page.continue;
    } while (token);
    return { nodes };
  }

  /** One page of the fleet's domains; `continue` names the next one. */
  domains(token?: string): Promise<{ domains: FleetDomain[]; continue?: string }> {
    return this.call('GET', `/v1/domains?limit=${PAGE_SIZE}${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
  }

  changeState(domain: FleetDomain, action: string): Promise<unknown> {
    return this.call('PUT', `/v1/nodes/${encodeURIComponent(domain.node)}/domains/${domain.uuid}/state`, { action });
  }

  /** Domain lifecycle events from the SSE stream, read with fetch so the token goes in a header; ends when `signal` aborts. */
  async follow(onEvent: (event: LifecycleEvent) => void, signal: AbortSignal): Promise<void> {
    const response = await fetch('/v1/events?kind=domain', { headers: { ...this.headers(false), accept: 'text/event-stream' }, signal });
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
        const data = block
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).replace(/^ /, ''))
          .join('\n');
        if (data && /^event: ?lifecycle$/m.test(block)) onEvent(JSON.parse(data) as LifecycleEvent);
      }
    }
  }

  vncUrl(domain: FleetDomain): string {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${location.host}/v1/nodes/${encodeURIComponent(domain.node)}/domains/${domain.uuid}/vnc`;
  }

  /** `binary` first: the server picks the first offered subprotocol, noVNC expects it. */
  wsProtocols(): string[] {
    return this.token ? ['binary', `${BEARER_PROTOCOL_PREFIX}${this.token}`] : ['binary'];
  }
}
