import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { VirtClient } from '@virtbus/client';
import { agentArgs, builtBundle, QUIET_AGENT_ARGS } from '@virtbus/testing';

/** A built agent from any bundle (an A/B's copy of dist/), qemu driver unless told, quiet; resolves once it answers node.info. */
export async function spawnBundleAgent(client: VirtClient, options: { bundle: string; node: string; natsUrl: string; stateDir: string; nodeArgs?: string[]; drivers?: string }): Promise<ChildProcess> {
  const args = agentArgs({ node: options.node, natsUrl: options.natsUrl, stateDir: options.stateDir, drivers: options.drivers ?? 'qemu', extraArgs: QUIET_AGENT_ARGS, nodeArgs: options.nodeArgs ?? [] }).map((a) =>
    a === builtBundle('virtbus-agent') ? options.bundle : a,
  );
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  for (;;) {
    try {
      await client.call(options.node, 'node.info', {}, { timeoutMs: 1000 });
      return child;
    } catch {
      if (child.exitCode !== null) throw new Error(`agent ${options.bundle} exited with ${child.exitCode}`);
      await sleep(100);
    }
  }
}

/** Ends an A/B's agents (SIGTERM, each waited for) and its nats-server; the work dir stays when it holds profiles (PROF=1). */
export async function endBundleRun(children: ChildProcess[], nats: { stop(): Promise<void> }, root: string): Promise<void> {
  for (const child of children) {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
  await nats.stop();
  if (process.env.PROF === '1') console.log('profiles under', root);
  else await rm(root, { recursive: true, force: true });
}
