import type { MsgHdrs } from '@nats-io/transport-node';

/** Writes the active span's W3C trace context into outgoing NATS headers. */
export type TraceInjector = (headers: MsgHdrs) => void;

// The monitoring lib supplies the real injector through buildApp's `injectTrace`; without it requests carry no trace context.
export const injectNoTrace: TraceInjector = () => {};
