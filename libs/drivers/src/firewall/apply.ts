import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtError } from '@virtbus/api-contract';
import { runInNetns } from '../util/netns.js';
import { FIREWALL_FAMILY, FIREWALL_TABLE, applyScript, filteredDevices, parseTableState, removeScript, type NicFilterSpec, type RenderOptions, type TableState } from './nft.js';

/** Runs an nft script as one transaction inside the namespace. */
async function nftScript(netns: string | undefined, script: string, check = false): Promise<void> {
  const file = join(tmpdir(), `virtbus-fw-${randomBytes(6).toString('hex')}.nft`);
  await writeFile(file, script, { mode: 0o600 });
  try {
    await runInNetns(netns, 'nft', [...(check ? ['-c'] : []), '-f', file]);
  } finally {
    await rm(file, { force: true });
  }
}

const rejectSupport = new Map<string, boolean>();

/** Whether bridge chains take `reject` here: a check-only (`nft -c`) transaction, so nothing is created. */
async function renderOptions(netns: string | undefined): Promise<RenderOptions> {
  const key = netns ?? '';
  let reject = rejectSupport.get(key);
  if (reject === undefined) {
    const probe = [`table ${FIREWALL_FAMILY} virtbus-fw-probe {`, '  chain c {', '    type filter hook prerouting priority 0; policy accept;', '    meta l4proto tcp reject with tcp reset', '  }', '}', ''].join('\n');
    reject = await nftScript(netns, probe, true).then(
      () => true,
      () => false,
    );
    rejectSupport.set(key, reject);
  }
  return { reject };
}

export async function readFirewallTable(netns: string | undefined): Promise<TableState | undefined> {
  let json: string;
  try {
    json = await runInNetns(netns, 'nft', ['-j', 'list', 'table', FIREWALL_FAMILY, FIREWALL_TABLE]);
  } catch (error) {
    if (/No such file or directory|does not exist/i.test((error as Error).message)) return undefined;
    throw error;
  }
  return parseTableState(json);
}

export interface NicFilterTarget extends NicFilterSpec {
  netns: string | undefined;
}

/** Applies (or re-applies) a rule set to one NIC in a single nft transaction: never a moment without its rules. */
export async function applyNicFilter(target: NicFilterTarget): Promise<void> {
  const script = applyScript(target, await renderOptions(target.netns));
  try {
    await nftScript(target.netns, script);
  } catch (error) {
    throw new VirtError('OPERATION_FAILED', `firewall rules for ${target.device}: ${(error as Error).message}`, { cause: error });
  }
}

/** Removes a NIC's chains; the table itself goes with the last NIC. Nothing happens when there is nothing to remove. */
export async function removeNicFilter(target: { netns: string | undefined; device: string }): Promise<void> {
  const state = await readFirewallTable(target.netns);
  if (!state) return;
  const script = removeScript(target.device, state);
  if (script) await nftScript(target.netns, script);
}

/** Devices that currently have chains in virtbus's table. */
export async function listFilteredDevices(netns: string | undefined): Promise<string[]> {
  const state = await readFirewallTable(netns);
  return state ? filteredDevices(state) : [];
}
