import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireBinary } from './binaries.js';

export interface NatsServerOptions {
  jetstream?: boolean;
  /** Extra nats-server configuration text (accounts, TLS…), appended to the generated config. */
  config?: string;
  /** Reuse a port (to restart a server on the same address). */
  port?: number;
  /** Reuse a JetStream store directory (to restart a server with its data). */
  storeDir?: string;
}

export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly storeDir: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with code ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await sleep(20);
  }
  throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
}

/** The client port a server that picked its own (`-1`) wrote to its ports file in `dir`. */
async function portFromPortsFile(dir: string, child: ChildProcess, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with code ${child.exitCode}`);
    const text = await readFile(join(dir, `nats-server_${child.pid}.ports`), 'utf8').catch(() => '');
    let url: string | undefined;
    try {
      url = text ? (JSON.parse(text) as { nats?: string[] }).nats?.[0] : undefined;
    } catch {
      // read while being written: not whole JSON yet
    }
    if (url) return Number(new URL(url).port);
    await sleep(20);
  }
  throw new Error(`nats-server wrote no ports file within ${timeoutMs} ms`);
}

/**
 * Starts a real nats-server on a loopback port it picks itself (a port chosen here and bound later by the server could
 * be taken in between by another process on a shared machine); `stop()` ends exactly that process.
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = requireBinary('nats-server');
  const workDir = await mkdtemp(join(tmpdir(), 'virtbus-nats-'));
  const storeDir = options.storeDir ?? join(workDir, 'js');
  const config = [
    `listen: "127.0.0.1:${options.port ?? -1}"`,
    `ports_file_dir: "${workDir}"`,
    options.jetstream === false ? '' : `jetstream { store_dir: "${storeDir}" }`,
    options.config ?? '',
  ].join('\n');
  const configPath = join(workDir, 'nats.conf');
  await writeFile(configPath, config);
  const child = spawn(binary, ['-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  let port = options.port ?? 0;
  try {
    port ||= await portFromPortsFile(workDir, child, 10_000);
    await waitForPort(port, child, 10_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${stderr}`, { cause: error });
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    storeDir,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(5000)]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      if (!options.storeDir) await rm(workDir, { recursive: true, force: true });
    },
  };
}
