import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtBundle } from '@virtbus/testing';
import { startCliStack, type CliStack } from './support/stack.js';

let stack: CliStack;
let workDir: string;
let gatewayUrl: string;
const cli = (...args: string[]) => stack.cli(...args);

beforeAll(async () => {
  stack = await startCliStack({ nodes: ['solo'] });
  ({ workDir, gatewayUrl } = stack);
});

afterAll(async () => {
  await stack?.close();
});

describe('virtbus CLI against a real gateway and agent', () => {
  it('lists nodes and picks the only online node by itself', async () => {
    expect((await cli('nodes')).text).toMatch(/^Node\s+State\s+Version\n-+\nsolo\s+online\s+0\.1\.0$/);
    expect((await cli('nodeinfo')).text).toMatch(/^Node:\s+solo$/m);
  });

  it('defines, starts, shows, stops and undefines a domain like virsh', async () => {
    expect((await cli('define', '--name', 'shell-1', '--driver', 'test', '--vcpus', '2', '--memory', '64')).text).toMatch(/^Domain 'shell-1' defined/);
    expect((await cli('list')).text).not.toContain('shell-1');
    expect((await cli('list', '--all')).text).toMatch(/shell-1\s+shutoff\s+test/);
    expect((await cli('start', 'shell-1')).text).toBe("Domain 'shell-1' started: running (booted)");
    const info = await cli('dominfo', 'shell-1');
    expect(info.text).toMatch(/^State:\s+running \(booted\)$/m);
    expect(info.text).toMatch(/^CPU\(s\):\s+2$/m);
    expect((await cli('domstats', 'shell-1')).text).toMatch(/^ {2}cpu\.time=\d+$/m);
    expect((await cli('domstate', 'shell-1')).text).toBe('running');
    expect((await cli('domstate', 'shell-1', '--reason')).text).toBe('running (booted)');
    expect((await cli('destroy', 'shell-1')).text).toContain('shutoff (destroyed)');
    expect((await cli('domstate', 'shell-1', '--reason')).text).toBe('shutoff (destroyed)');
    // virsh's numeric ids: a running domain has one (list's Id column, domid, dominfo), a shut-off one shows -
    expect((await cli('domid', 'shell-1')).text).toBe('-');
    expect((await cli('list', '--all')).text).toMatch(/^Id\s+Name\s+State\s+Driver\s+UUID\n-+\n(.*\n)*-\s+shell-1\s+shutoff\s+test\s/m);
    await cli('start', 'shell-1');
    const listed = /^(\d+)\s+shell-1\s+running\s/m.exec((await cli('list')).text);
    expect(listed).not.toBeNull();
    const id = Number(listed![1]);
    expect((await cli('domid', 'shell-1')).text).toBe(String(id));
    expect((await cli('dominfo', 'shell-1')).text).toMatch(new RegExp(`^Id:\\s+${id}$`, 'm'));
    // as in virsh, the id names the running domain
    expect((await cli('domstate', String(id))).text).toBe('running');
    await cli('destroy', 'shell-1');
    await expect(cli('domstate', String(id))).rejects.toMatchObject({ code: 'NO_DOMAIN' });
    await cli('start', 'shell-1');
    // a new start gets a new id, as in libvirt
    expect(Number((await cli('domid', 'shell-1')).text)).toBeGreaterThan(id);
    await cli('destroy', 'shell-1');
    const json = JSON.parse((await cli('--json', 'dominfo', 'shell-1')).text) as { state: string };
    expect(json.state).toBe('shutoff');
    expect((await cli('undefine', 'shell-1')).text).toBe("Domain 'shell-1' has been undefined");
  });

  it('sets vCPUs and memory like virsh setvcpus and setmem, live and in the definition', async () => {
    const spec = join(workDir, 'res.json');
    await writeFile(spec, JSON.stringify({ name: 'res-1', driver: 'test', vcpus: 1, memory: 256, cpu: { maxVcpus: 4 } }));
    await cli('define', spec);
    await cli('start', 'res-1');
    expect((await cli('setvcpus', 'res-1', '3')).text).toBe("vCPUs of 'res-1' set to 3 live");
    expect((await cli('setmem', 'res-1', '128', '--config')).text).toBe("Memory of 'res-1' set to 128 MiB in the definition");
    expect((await cli('domstats', 'res-1')).text).toMatch(/^ {2}vcpu\.current=3$/m);
    await expect(cli('setvcpus', 'res-1', '5')).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await cli('destroy', 'res-1');
    const transient = join(workDir, 'transient.json');
    await writeFile(transient, JSON.stringify({ name: 'once-1', driver: 'test' }));
    expect((await cli('create', transient)).text).toBe(`Domain 'once-1' created from ${transient}: running (transient)`);
  });

  it('streams events from a sequence and stops after --count', async () => {
    const { text } = await cli('events', '--since', '0', '--count', '3');
    const lines = text.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines.map((line) => line.split(/\s+/)[4])).toEqual(['DEFINED/ADDED', 'STARTED/BOOTED', 'STOPPED/DESTROYED']);
  });

  it('streams domain events beyond the lifecycle (--kind domainevent) and refuses hypervisor-specific verbs on other drivers', async () => {
    expect((await cli('define', '--name', 'events-1', '--driver', 'test', '--memory', '64')).text).toMatch(/^Domain 'events-1' defined/);
    const put = await fetch(`${gatewayUrl}/v1/nodes/solo/domains/events-1`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ labels: { tier: 'web' } }) });
    expect(put.status).toBe(200);
    // the setvcpus test before this one published a TUNABLE of res-1 first
    const { text } = await cli('events', '--kind', 'domainevent', '--since', '0', '--count', '2');
    expect(text.split('\n')).toContainEqual(expect.stringMatching(/^\d+\s+\S+\s+solo\s+events-1\s+METADATA_CHANGE\(23\)\s+metadata=labels$/));
    await cli('start', 'events-1');
    await expect(cli('qemu-monitor-command', 'events-1', 'query-status')).rejects.toMatchObject({ code: 'OPERATION_UNSUPPORTED' });
    await expect(cli('lxc-enter-namespace', 'events-1', 'true')).rejects.toMatchObject({ code: 'OPERATION_UNSUPPORTED' });
    await expect(cli('domcapabilities', '--driver', 'test')).rejects.toMatchObject({ code: 'OPERATION_UNSUPPORTED' });
    await cli('destroy', 'events-1');
    await cli('undefine', 'events-1');
  });

  it('manages pools and volumes like virsh, uploads and downloads content with its sha256, clones with progress', async () => {
    expect((await cli('pool-list')).text).toMatch(/^default\s+dir\s+running/m);
    const target = join(workDir, 'pool-two');
    expect((await cli('pool-define', '--name', 'two', '--type', 'dir', '--target', target)).text).toBe('Pool two defined');
    expect((await cli('pool-build', 'two')).text).toMatch(/^Pool two: build done/);
    expect((await cli('pool-start', 'two')).text).toBe('Pool two: start done, running');
    expect((await cli('pool-info', 'two')).text).toMatch(/^Target:\s+.*pool-two$/m);

    expect((await cli('vol-create', 'two', 'blank', '1MiB', '--format', 'raw')).text).toBe('Vol blank created (raw, 1.0 MiB)');
    const content = randomBytes(3 * 1024 * 1024 + 17);
    const source = join(workDir, 'upload.bin');
    await writeFile(source, content);
    const sha256 = createHash('sha256').update(content).digest('hex');
    // a volume that does not exist is not made behind the user's back
    await expect(cli('vol-upload', 'two', 'data', source)).rejects.toMatchObject({ code: 'NO_STORAGE_VOL' });
    expect((await cli('vol-list', 'two')).text).not.toMatch(/^data\s/m);
    expect((await cli('vol-upload', '--create', 'two', 'data', source)).text).toBe(`Uploaded 3.0 MiB to two/data, sha256 ${sha256}`);
    // a smaller file into the 1 MiB raw volume keeps its capacity
    const small = join(workDir, 'small.bin');
    await writeFile(small, randomBytes(100 * 1024));
    expect((await cli('vol-upload', 'two', 'blank', small)).code).toBe(0);
    expect((await cli('vol-info', 'two', 'blank')).text).toMatch(/^Capacity:\s+1\.0 MiB$/m);
    const copy = join(workDir, 'download.bin');
    expect((await cli('vol-download', 'two', 'data', copy)).text).toMatch(new RegExp(`^Downloaded 3\\.0 MiB to .*download\\.bin, sha256 ${sha256}$`));
    expect((await readFile(copy)).equals(content)).toBe(true);
    expect((await cli('vol-clone', 'two', 'data', 'data-copy')).text).toBe('Vol data-copy cloned from data');
    expect((await cli('vol-info', 'two', 'data-copy')).text).toMatch(/^Format:\s+raw$/m);
    expect((await cli('vol-resize', 'two', 'blank', '2MiB')).text).toBe("Size of volume 'blank' changed to 2.0 MiB");
    expect((await cli('vol-list', 'two')).text.split('\n').slice(2).map((line) => line.split(/\s+/)[0]).sort()).toEqual(['blank', 'data', 'data-copy']);
    for (const volume of ['blank', 'data', 'data-copy']) expect((await cli('vol-delete', 'two', volume)).code).toBe(0);
    expect((await cli('pool-destroy', 'two')).text).toBe('Pool two: stop done, inactive');
    expect((await cli('pool-undefine', 'two')).text).toBe('Pool two undefined');
    expect((await cli('pool-list')).text).not.toMatch(/^two\s/m);
  });

  it('ends a console session with a message and exit 0 when its domain stops (as a real process)', async () => {
    await cli('define', '--name', 'tty-1', '--driver', 'test');
    await cli('start', 'tty-1');
    const child = spawn(process.execPath, [builtBundle('virtbus'), '--url', gatewayUrl, 'console', 'tty-1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      // attached once the history (the boot banner) is shown
      for (let round = 0; round < 100 && !stdout.includes('GUEST-READY'); round++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(stdout).toContain('GUEST-READY');
      await cli('destroy', 'tty-1');
      // bounded: a session still attached after 15 s is the bug
      const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still attached'), 15_000))]);
      expect(code).toBe(0);
      expect(stderr).toMatch(/domain tty-1 (stopped|is shut ?off)/i);
    } finally {
      child.kill('SIGKILL');
      await cli('undefine', 'tty-1').catch(() => undefined);
    }
  });

  it('answers the virsh inspection verbs: domblklist, domiflist, dumpconfig, domuuid, domstats, uri, hostname, version, capabilities', async () => {
    const image = join(workDir, 'inspect.img');
    await writeFile(image, Buffer.alloc(1024 * 1024));
    const spec = join(workDir, 'inspect.json');
    await writeFile(spec, JSON.stringify({ name: 'inspect-1', driver: 'test', disks: [{ source: { path: image }, target: 'vda', format: 'raw' }], nics: [{ type: 'user', mac: '52:54:00:aa:bb:cc' }] }));
    expect((await cli('define', spec)).code).toBe(0);
    const { uuid } = JSON.parse((await cli('--json', 'dominfo', 'inspect-1')).text) as { uuid: string };
    expect((await cli('domuuid', 'inspect-1')).text).toBe(uuid);
    const info = (await cli('dominfo', 'inspect-1')).text;
    expect(info).toMatch(/^OS Type:\s+hvm$/m);
    expect(info).toMatch(/^Max memory:\s+\d+ KiB$/m);
    const blk = (await cli('domblklist', 'inspect-1')).text.split('\n');
    expect(blk[0]).toMatch(/^Target\s+Source$/);
    expect(blk.slice(2)).toEqual([`vda      ${image}`]);
    expect((await cli('domiflist', 'inspect-1')).text).toMatch(/^net0\s+user\s+-\s+virtio\s+52:54:00:aa:bb:cc$/m);
    const config = JSON.parse((await cli('dumpconfig', 'inspect-1')).text) as { name: string; uuid: string; disks: { source: { path: string } }[]; nics: { mac: string }[] };
    expect(config).toMatchObject({ name: 'inspect-1', uuid, disks: [{ source: { path: image } }], nics: [{ mac: '52:54:00:aa:bb:cc' }] });
    await cli('start', 'inspect-1');
    const stats = (await cli('domstats', 'inspect-1')).text;
    expect(stats.split('\n')[0]).toBe("Domain: 'inspect-1'");
    expect(stats).toMatch(/^ {2}state\.state=running$/m);
    expect(stats).toMatch(/^ {2}state\.reason=booted$/m);
    expect(stats.split('\n').slice(1).every((line) => /^ {2}[a-z_]+(\.[a-z0-9_]+)*=\S*$/.test(line))).toBe(true);
    expect((await cli('uri')).text).toBe(`${gatewayUrl}/`);
    const node = JSON.parse((await cli('--json', 'capabilities')).text) as { node: string; hostname: string; drivers: { name: string }[] };
    expect(node.node).toBe('solo');
    expect(node.drivers.map((driver) => driver.name)).toContain('test');
    expect((await cli('hostname')).text).toBe(node.hostname);
    const version = (await cli('version')).text;
    expect(version).toMatch(/^Client:\s+virtbus \S+/m);
    expect(version).toMatch(/^Agent:\s+virtbus-agent \S+.* on solo \(API v1\)$/m);
    expect((await cli('help', 'domblklist')).text).toMatch(/^usage: virtbus \[options\] domblklist DOMAIN/);
    // the built CLI (bindings inlined by the build) answers the same
    const built = await promisify(execFile)(process.execPath, [builtBundle('virtbus'), '--url', gatewayUrl, 'domuuid', 'inspect-1']);
    expect(built.stdout.trim()).toBe(uuid);
    const builtId = await promisify(execFile)(process.execPath, [builtBundle('virtbus'), '--url', gatewayUrl, 'domid', 'inspect-1']);
    expect(builtId.stdout.trim()).toBe(String((JSON.parse((await cli('--json', 'dominfo', 'inspect-1')).text) as { id: number }).id));
    expect(builtId.stdout.trim()).toMatch(/^\d+$/);
    await cli('destroy', 'inspect-1');
    expect((await cli('undefine', 'inspect-1')).code).toBe(0);
  });

  it('gives a domain a VNC password with --vnc-password(-file) on define and create (the read shows only passwordSet)', async () => {
    const passwordFile = join(workDir, 'vnc-password');
    await writeFile(passwordFile, 'f1le-pw\n');
    await cli('define', '--name', 'vnc-1', '--driver', 'test', '--vnc-password-file', passwordFile);
    const spec = join(workDir, 'vnc-2.json');
    await writeFile(spec, JSON.stringify({ name: 'vnc-2', driver: 'test', graphics: { type: 'vnc', video: 'virtio' } }));
    await cli('create', spec, '--vnc-password', 'fl4g-pw');
    const graphicsOf = async (name: string) => JSON.parse((await cli('--json', 'dominfo', name)).text) as { config: { graphics?: unknown } };
    expect((await graphicsOf('vnc-1')).config.graphics).toEqual({ type: 'vnc', video: 'std', passwordSet: true });
    expect((await graphicsOf('vnc-2')).config.graphics).toEqual({ type: 'vnc', video: 'virtio', passwordSet: true });
    expect(JSON.stringify(await graphicsOf('vnc-1'))).not.toContain('f1le-pw');
    // VNC authentication keys with 8 characters: a longer password is refused, not cut
    await expect(cli('define', '--name', 'vnc-3', '--driver', 'test', '--vnc-password', 'nine-char')).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await cli('destroy', 'vnc-2');
    await cli('undefine', 'vnc-1');
  });

  it('prints the gateway error and exits non-zero (as a real process)', async () => {
    const bin = builtBundle('virtbus');
    // Asynchronous on purpose: the gateway under test lives in this process and must keep answering.
    const failure = (await promisify(execFile)(process.execPath, [bin, '--url', gatewayUrl, 'start', 'nope']).catch((error: unknown) => error)) as {
      code?: number;
      stderr?: string;
    };
    expect(failure.code).toBe(1);
    expect(failure.stderr).toMatch(/error: no domain nope on node solo \(NO_DOMAIN\)/);
  });
});

describe('virtbus CLI snapshot and save verbs', () => {
  it('creates, lists as a tree, reverts and deletes snapshots; saves, restores and managed-saves', async () => {
    await cli('define', '--name', 'snap-1', '--driver', 'test');
    await cli('start', 'snap-1');
    expect((await cli('snapshot-create', 'snap-1', '--name', 'a')).text).toBe('Domain snapshot a created (internal, with memory)');
    await cli('snapshot-create', 'snap-1', '--name', 'b');
    expect((await cli('snapshot-revert', 'snap-1', 'a')).text).toBe("Domain 'snap-1' reverted to snapshot a: running (from_snapshot)");
    await cli('snapshot-create', 'snap-1', '--name', 'c', '--kind', 'external');
    expect((await cli('snapshot-list', 'snap-1', '--tree')).text).toBe(['a', '├── b', '└── c (current)'].join('\n'));
    expect((await cli('snapshot-info', 'snap-1', 'c')).text).toMatch(/^Kind:\s+external \(disk only\)$/m);
    expect((await cli('snapshot-delete', 'snap-1', 'a', '--children', '--metadata')).text).toBe('Domain snapshots b, c, a deleted');
    expect((await cli('save', 'snap-1', 'default', 'snap-1.save')).text).toBe("Domain 'snap-1' saved to default/snap-1.save");
    expect((await cli('restore', 'default', 'snap-1.save')).text).toBe("Domain 'snap-1' restored from default/snap-1.save: running (restored)");
    await cli('managedsave', 'snap-1');
    expect((await cli('start', 'snap-1')).text).toBe("Domain 'snap-1' started: running (restored)");
    await cli('managedsave', 'snap-1');
    expect((await cli('managedsave-remove', 'snap-1')).text).toBe('Removed managed save image for domain snap-1');
  });

  it('pages a snapshot list through the gateway with limit and continue, oldest first; the CLI shows every page', async () => {
    await cli('define', '--name', 'snap-pages', '--driver', 'test');
    const names = ['s1', 's2', 's3', 's4', 's5'];
    for (const name of names) await cli('snapshot-create', 'snap-pages', '--name', name);
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const response = await fetch(`${gatewayUrl}/v1/nodes/solo/domains/snap-pages/snapshots?limit=2${token ? `&continue=${token}` : ''}`);
      expect(response.status).toBe(200);
      const page = (await response.json()) as { snapshots: { name: string }[]; current?: string; continue?: string; remaining: number };
      expect(page.snapshots.length).toBeLessThanOrEqual(2);
      expect(page.current).toBe('s5');
      seen.push(...page.snapshots.map((snapshot) => snapshot.name));
      expect(page.remaining).toBe(names.length - seen.length);
      token = page.continue;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual(names);
    expect((await fetch(`${gatewayUrl}/v1/nodes/solo/domains/snap-pages/snapshots?continue=not-ours`)).status).toBe(400);
    expect((await cli('snapshot-list', 'snap-pages', '--tree')).text).toBe(['s1', '└── s2', '    └── s3', '        └── s4', '            └── s5 (current)'].join('\n'));
  });
});
