import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { compileValidator, DnsHost, isObjectName, NetworkIp, NetworkMode, ObjectName, Uuid } from '@virtbus/api-contract';
import { writeJsonAtomic } from '@virtbus/drivers';
import Type, { type Static } from 'typebox';
import type { Logger } from 'pino';
import { StateDir } from '../state-dir.js';

/** A network as the agent keeps it on disk: definition, autostart, whether it runs, and its dnsmasq. */
export const StoredNetwork = Type.Object({
  uuid: Uuid,
  name: ObjectName,
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

export class NetworkStore {
  readonly dir: string;

  constructor(
    stateDir: string,
    private readonly logger: Logger,
  ) {
    this.dir = StateDir.networks(stateDir);
  }

  async loadAll(): Promise<StoredNetwork[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const networks: StoredNetwork[] = [];
    for (const file of await readdir(this.dir)) {
      if (!file.endsWith('.json') || !isObjectName(file.slice(0, -5))) continue;
      const path = join(this.dir, file);
      try {
        networks.push(validStoredNetwork.parse(JSON.parse(await readFile(path, 'utf8'))));
      } catch (error) {
        // A damaged file is kept for a person to inspect, never silently deleted.
        this.logger.error({ err: error, path }, 'ignoring unreadable network definition');
      }
    }
    return networks;
  }

  async save(network: StoredNetwork): Promise<void> {
    await writeJsonAtomic(join(this.dir, `${network.name}.json`), network);
  }

  async remove(name: string): Promise<void> {
    await rm(join(this.dir, `${name}.json`), { force: true });
  }
}
