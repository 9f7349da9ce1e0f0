import { compileValidator, DnsHost, NetworkIp, NetworkMode } from '@virtbus/api-contract';
import Type, { type Static } from 'typebox';
import type { Logger } from 'pino';
import { JsonDirStore, StoredIdentityFields } from '../json-dir-store.js';
import { StateDir } from '../state-dir.js';

/** A network as the agent keeps it on disk: definition, autostart, whether it runs, and its dnsmasq. */
export const StoredNetwork = Type.Object({
  ...StoredIdentityFields,
  mode: NetworkMode,
  bridge: Type.String(),
  uplink: Type.Optional(Type.String()),
  domain: Type.Optional(Type.String()),
  ipv4: Type.Optional(NetworkIp),
  ipv6: Type.Optional(NetworkIp),
  dnsHosts: Type.Array(DnsHost),
  autostart: Type.Boolean(),
  active: Type.Boolean(),
  runtime: Type.Optional(Type.Object({ dnsmasqPid: Type.Optional(Type.Integer()), dnsmasqStartTime: Type.Optional(Type.Integer()) })),
});
export type StoredNetwork = Static<typeof StoredNetwork>;

const validStoredNetwork = compileValidator(StoredNetwork);

export class NetworkStore extends JsonDirStore<StoredNetwork> {
  constructor(stateDir: string, logger: Logger) {
    super(StateDir.networks(stateDir), (value) => validStoredNetwork.parse(value), 'network definition', logger);
  }
}
