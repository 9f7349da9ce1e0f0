import type { DomainConfig, DomainState, StateReason } from '@virtbus/api-contract';
import { pino } from 'pino';
import type { ConsoleSession, DomainRecord, DomainRuntime, DriverContext, RunState } from '../../src/index.js';

/** What the agent keeps for one domain, updated from returns and observations. */
export class TestDomain implements DomainRecord {
  state: DomainState = 'shutoff';
  reason: StateReason = 'unknown';
  runtime?: DomainRuntime;
  constructor(readonly config: DomainConfig) {}

  apply(change: RunState): RunState {
    this.state = change.state;
    this.reason = change.reason;
    if (change.runtime === null) this.runtime = undefined;
    else if (change.runtime !== undefined) this.runtime = change.runtime;
    return change;
  }
}

export interface Observation {
  uuid: string;
  change: RunState;
}

/** A real DriverContext: temp state dir, a quiet logger, observations recorded and applied like the agent does. */
export function makeDriverContext<D extends TestDomain>(stateDir: string, domains: Map<string, D>, observed: Observation[]): DriverContext {
  return {
    node: 'test-node',
    stateDir,
    logger: pino({ level: 'warn' }),
    observedState(uuid, change) {
      observed.push({ uuid, change });
      domains.get(uuid)?.apply(change);
    },
    async saveRuntime(uuid, runtime) {
      const domain = domains.get(uuid);
      if (domain) domain.runtime = runtime ?? undefined;
    },
  };
}

/** Collects a console session's history plus live output. */
export function collectConsole(session: ConsoleSession): { text: () => string } {
  let text = session.history.toString('utf8');
  session.onData((chunk) => (text += chunk.toString('utf8')));
  return { text: () => text };
}
