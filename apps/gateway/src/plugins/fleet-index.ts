import type { FastifyInstance } from 'fastify';
import type { Subscription } from '@nats-io/transport-node';
import { compileValidator, LifecycleEvent, Subjects, VirtError, type NodeRecord } from '@virtbus/api-contract';
import { FleetIndex, type NumberedEvent } from '../fleet/fleet-index.js';
import { shared } from './skip-override.js';

export interface FleetIndexPluginOptions {
  /** How long the first fleet request waits for every node's first list before answering with `stale` nodes. */
  initialWaitMs?: number;
  /** Nodes listed at once. */
  concurrency?: number;
}

export interface FleetView {
  /** The index, started on first use (the registry watch, the event subscription, one list per node). */
  index(): Promise<FleetIndex>;
}

declare module 'fastify' {
  interface FastifyInstance {
    fleet: FleetView;
  }
}

const DEFAULT_INITIAL_WAIT_MS = 5000;
const validLifecycle = compileValidator(LifecycleEvent);

/** A new agent (other start time or service instance) may have other state and restart its sequence. */
function generationOf(record: NodeRecord): string {
  return `${record.startedAt ?? ''}|${record.serviceId ?? ''}`;
}

/** Only numbered events count: lifecycle events are checked whole, other families only for node and seq. */
function parseEvent(data: Uint8Array): NumberedEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
  const event = value as Partial<NumberedEvent> | null;
  if (!event || typeof event.kind !== 'string' || typeof event.node !== 'string' || !Number.isSafeInteger(event.seq) || (event.seq as number) < 1) return undefined;
  if (event.kind === 'domain.lifecycle' && !validLifecycle.check(value)) return undefined;
  return event as NumberedEvent;
}

async function fleetIndexPlugin(app: FastifyInstance, options: FleetIndexPluginOptions): Promise<void> {
  let starting: Promise<FleetIndex> | undefined;
  let closed = false;
  const cleanup: Array<() => void> = [];

  async function start(): Promise<FleetIndex> {
    const nc = await app.agents.connection();
    const registry = await app.agents.registry();
    const index = new FleetIndex(
      {
        list: (node, query) => app.agents.call(node, 'domain.list', query),
        describe: async (node, uuid) => {
          try {
            return await app.agents.call(node, 'domain.get', { id: uuid });
          } catch (error) {
            if (VirtError.is(error, 'NO_DOMAIN')) return undefined;
            throw error;
          }
        },
      },
      { ...(options.concurrency ? { concurrency: options.concurrency } : {}), logger: app.log },
    );
    cleanup.push(() => index.close());
    // subscribed before any node is listed, so no event falls between a list and the stream
    const subscription: Subscription = nc.subscribe(Subjects.allEvents, {
      callback: (error, msg) => {
        if (error) return;
        const event = parseEvent(msg.data);
        if (event) index.applyEvent(event);
      },
    });
    cleanup.push(() => subscription.unsubscribe());
    void (async () => {
      for await (const status of nc.status()) {
        if (closed) break;
        // plain subscribers miss what was published while the connection was down
        if (status.type === 'reconnect') index.resyncAll();
      }
    })().catch(() => undefined);
    cleanup.push(registry.onChange((node, entry) => (entry ? index.setNode(node, generationOf(entry.record)) : index.removeNode(node))));
    await registry.ready(DEFAULT_INITIAL_WAIT_MS);
    for (const summary of registry.summaries()) {
      const entry = registry.get(summary.node);
      if (entry) index.setNode(summary.node, generationOf(entry.record));
    }
    await index.whenSynced(options.initialWaitMs ?? DEFAULT_INITIAL_WAIT_MS);
    return index;
  }

  app.decorate('fleet', {
    index() {
      starting ??= start().catch((error: unknown) => {
        starting = undefined;
        throw error;
      });
      return starting;
    },
  } satisfies FleetView);
  app.addHook('onClose', async () => {
    closed = true;
    for (const undo of cleanup.splice(0)) undo();
  });
}

export default shared(fleetIndexPlugin);
