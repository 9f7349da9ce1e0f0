import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { EVENTS_STREAM, Subjects, type LifecycleEvent } from '@virtbus/api-contract';

/** Every event of the node in the VIRT_EVENTS stream, in stream order (a consumer-less direct read). */
export async function storedNodeEvents(nc: NatsConnection, node: string): Promise<LifecycleEvent[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(EVENTS_STREAM);
  const events: LifecycleEvent[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const message = await jsm.streams.getMessage(EVENTS_STREAM, { seq });
    if (message) events.push(message.json<LifecycleEvent>());
  }
  return events.filter((event) => event.node === node);
}

/** Waits until the stream holds `count` events of the node (or the time is up) and returns them. */
export async function waitForStoredNodeEvents(nc: NatsConnection, node: string, count: number, timeoutMs = 60_000): Promise<LifecycleEvent[]> {
  const until = Date.now() + timeoutMs;
  let events: LifecycleEvent[] = [];
  while (Date.now() < until) {
    events = await storedNodeEvents(nc, node).catch(() => events);
    if (events.length >= count) return events;
    await sleep(100);
  }
  return events;
}

/** Subscribes to every node's domain lifecycle events and keeps each once in `into`: core subscribers get at-least-once delivery (an agent killed mid-flush republishes), and (node, seq) identifies an event. */
export function collectBusEvents(nc: NatsConnection, into: LifecycleEvent[]): Subscription {
  // lifecycle events only: the other families (domain events beyond the lifecycle, pools, …) have other payloads
  return nc.subscribe(Subjects.domainEventFilter({}), {
    callback: (_error, msg) => {
      const event = msg.json<LifecycleEvent>();
      if (!into.some((other) => other.node === event.node && other.seq === event.seq)) into.push(event);
    },
  });
}
