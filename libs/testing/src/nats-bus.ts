import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll } from 'vitest';
import { startNatsServer, type NatsServerHandle, type NatsServerOptions } from './nats-server.js';
import { tearDown } from './teardown.js';

export interface NatsBus {
  readonly server: NatsServerHandle;
  readonly nc: NatsConnection;
}

/** A nats-server and a connection to it for the enclosing file or describe block: up in beforeAll, ended after the block's own afterAll hooks (options given as a function are read in beforeAll). */
export function useNatsBus(options?: NatsServerOptions | (() => NatsServerOptions)): NatsBus {
  let server: NatsServerHandle | undefined;
  let nc: NatsConnection | undefined;
  beforeAll(async () => {
    server = await startNatsServer(typeof options === 'function' ? options() : options);
    nc = await connect({ servers: server.url });
  });
  afterAll(() => tearDown(nc, server));
  const ready = <T>(part: T | undefined): T => {
    if (part === undefined) throw new Error('the NATS bus is used before its beforeAll ran');
    return part;
  };
  return {
    get server() {
      return ready(server);
    },
    get nc() {
      return ready(nc);
    },
  };
}
