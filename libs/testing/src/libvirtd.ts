import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const LIBVIRTD = '/usr/sbin/libvirtd';
const VIRTLOGD = '/usr/sbin/virtlogd';
export const VIRSH = '/usr/bin/virsh';
/** Host directories libvirtd (privileged) uses; each gets a bench directory bind-mounted over it in a private mount namespace. */
const LIBVIRT_DIRS = { etc: '/etc/libvirt', run: '/run', lib: '/var/lib/libvirt', cache: '/var/cache/libvirt', log: '/var/log/libvirt' } as const;

/** Installs Debian's libvirt when missing (the package's services are not started here: the bench runs its own). */
export async function ensureLibvirt(): Promise<void> {
  if ([LIBVIRTD, VIRTLOGD, VIRSH].every((path) => existsSync(path))) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const { stdout } = await run('apt-cache', ['policy', 'libvirt-daemon-system'], { env });
  if (!/Candidate: (?!\(none\))/.test(stdout)) await run('apt-get', ['update'], { env, maxBuffer: 64 * MiB });
  console.log('installing libvirt-daemon-system libvirt-clients (apt-get)…');
  await run('apt-get', ['install', '-y', 'libvirt-daemon-system', 'libvirt-clients'], { env, maxBuffer: 64 * MiB });
  for (const path of [LIBVIRTD, VIRTLOGD, VIRSH]) if (!existsSync(path)) throw new Error(`${path} missing after installing libvirt`);
}

/**
 * Runs under `unshare --mount --net` as PID of the bench's choosing: bind-mounts the bench's directories over libvirt's
 * (and /run), becomes a child subreaper (so QEMUs libvirtd daemonizes are reaped at once, not left as zombies that
 * libvirt's destroy would poll), starts virtlogd and libvirtd in the foreground and reaps every child until they end.
 * A private network namespace keeps libvirtd's firewall probing and drivers away from the host's network.
 */
const WRAPPER = String.raw`
use strict;
use POSIX ();
my $root = shift @ARGV;
syscall(157, 36, 1, 0, 0, 0) == 0 or die "prctl(PR_SET_CHILD_SUBREAPER): $!";
for my $pair (@ARGV) {
  my ($from, $to) = split /=/, $pair, 2;
  system('mount', '--bind', "$root/$from", $to) == 0 or die "mount --bind $root/$from $to failed";
}
system('ip', 'link', 'set', 'lo', 'up');
my @daemons;
for my $cmd (['${VIRTLOGD}'], ['${LIBVIRTD}', ($ENV{VIRTBUS_LIBVIRTD_LISTEN} ? ('--listen') : ())]) {
  my $pid = fork() // die "fork: $!";
  if ($pid == 0) { exec(@$cmd) or POSIX::_exit(127); }
  push @daemons, $pid;
}
my $stop = 0;
$SIG{TERM} = sub { $stop = 1; kill 'TERM', reverse @daemons; };
while (1) {
  my $pid = waitpid(-1, 0);
  if ($pid == -1) { next if $!{EINTR}; last; }
  if (grep { $_ == $pid } @daemons) { @daemons = grep { $_ != $pid } @daemons; kill 'TERM', @daemons unless $stop; $stop = 1; }
}
`;

export interface Libvirt {
  /** qemu:///system of the private daemon, over its own unix socket. */
  uri: string;
  /** The private daemon's read-write unix socket (host path). */
  socket: string;
  /** PID of the namespace wrapper (unshare) that holds virtlogd and libvirtd. */
  pid: number;
  /** Runs commands in one virsh process (one connection) with -t; returns each command's time in ms. */
  batch(commands: string[]): Promise<number[]>;
  /** The libvirtd process (a child of the wrapper). */
  libvirtdPid(): number;
  stop(): Promise<void>;
}

/**
 * A CA, a server certificate for localhost / 127.0.0.1 and a client certificate in `dir` (libvirt's file names:
 * cacert.pem, servercert.pem, serverkey.pem, clientcert.pem, clientkey.pem), as `qemu+tls://…?pkipath=dir` reads them.
 */
export async function makeLibvirtPki(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const ssl = (...args: string[]) => run('openssl', args, { cwd: dir });
  await ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'cakey.pem', '-out', 'cacert.pem', '-days', '2', '-subj', '/CN=virtbus test CA');
  for (const [who, usage, san] of [['server', 'serverAuth', 'subjectAltName=DNS:localhost,IP:127.0.0.1\n'], ['client', 'clientAuth', '']] as const) {
    await ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}key.pem`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'server' ? 'localhost' : 'virtbus-agent'}`);
    await writeFile(join(dir, `${who}.ext`), `${san}keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`);
    await ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'cacert.pem', '-CAkey', 'cakey.pem', '-CAcreateserial', '-out', `${who}cert.pem`, '-days', '2', '-extfile', `${who}.ext`);
  }
}

/**
 * libvirtd's TLS port (inside its private network namespace) on a loopback port of the host: a relay in the daemon's
 * namespace (nsenter) listens on a unix socket in `root`, and one in this process forwards a host TCP port to it.
 */
export async function relayLibvirtTls(libvirt: Libvirt, root: string): Promise<{ port: number; close(): Promise<void> }> {
  const path = join(root, 'tls-relay.sock');
  const inner = spawn(
    'nsenter',
    [`--net=/proc/${libvirt.pid}/ns/net`, process.execPath, '-e', `require('net').createServer((c) => { const t = require('net').connect(16514, '127.0.0.1'); c.pipe(t).pipe(c); t.on('error', () => c.destroy()); c.on('error', () => t.destroy()); }).listen(${JSON.stringify(path)})`],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 10_000;
  while (!existsSync(path)) {
    if (Date.now() > deadline || inner.exitCode !== null) throw new Error('the TLS relay in libvirtd\'s namespace did not start');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const target = netConnect(path);
    for (const socket of [client, target]) {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
    }
    client.pipe(target).pipe(client);
    target.on('error', () => client.destroy());
    client.on('error', () => target.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      // libvirtd keeps half-closed TLS connections open: they are cut here
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      inner.kill('SIGTERM');
    },
  };
}

export async function startLibvirt(root: string, options: { tls?: boolean } = {}): Promise<Libvirt> {
  for (const from of Object.keys(LIBVIRT_DIRS)) await mkdir(join(root, from), { recursive: true });
  // /var/lock is /run/lock: libvirt's console streams lock their pty there
  await mkdir(join(root, 'run', 'lock'), { recursive: true });
  for (const to of Object.values(LIBVIRT_DIRS)) if (!existsSync(to)) throw new Error(`${to} does not exist: is libvirt installed?`);
  await writeFile(
    join(root, 'etc', 'qemu.conf'),
    ['user = "root"', 'group = "root"', 'dynamic_ownership = 0', 'remember_owner = 0', 'security_driver = "none"', 'namespaces = [ ]', 'cgroup_controllers = [ ]', ''].join('\n'),
  );
  const pki = join(root, 'pki');
  if (options.tls) await makeLibvirtPki(pki);
  const tlsConf = options.tls
    ? ['listen_tls = 1', 'listen_tcp = 0', 'listen_addr = "127.0.0.1"', 'auth_tls = "none"', `ca_file = "${pki}/cacert.pem"`, `cert_file = "${pki}/servercert.pem"`, `key_file = "${pki}/serverkey.pem"`]
    : [];
  // a host UUID of its own: libvirt refuses a migration between two daemons it takes for one host
  const hostUuid = `host_uuid = "${randomUUID()}"`;
  await writeFile(join(root, 'etc', 'libvirtd.conf'), ['auth_unix_ro = "none"', 'auth_unix_rw = "none"', 'unix_sock_rw_perms = "0700"', hostUuid, ...tlsConf, ''].join('\n'));
  await writeFile(join(root, 'wrapper.pl'), WRAPPER);
  const mounts = Object.entries(LIBVIRT_DIRS).map(([from, to]) => `${from}=${to}`);
  const wrapper: ChildProcess = spawn('unshare', ['--mount', '--net', '--propagation', 'private', 'perl', join(root, 'wrapper.pl'), root, ...mounts], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, VIRTBUS_LIBVIRTD_LISTEN: options.tls ? '1' : '' },
  });
  let stderr = '';
  wrapper.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise((resolve) => wrapper.once('exit', resolve));
  const socket = join(root, 'run', 'libvirt', 'libvirt-sock');
  const uri = `qemu+unix:///system?socket=${socket}`;
  const stop = async () => {
    if (wrapper.exitCode === null && wrapper.signalCode === null) {
      wrapper.kill('SIGTERM');
      const timer = setTimeout(() => wrapper.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
  };
  const batch = async (commands: string[]) => {
    const { stdout } = await run(VIRSH, ['-q', '-t', '-c', uri, commands.join(' ; ')], { maxBuffer: 64 * MiB });
    const times = [...stdout.matchAll(/\(Time: ([0-9.]+) ms\)/g)].map((match) => Number(match[1]));
    if (times.length !== commands.length) throw new Error(`virsh: ${times.length} timings for ${commands.length} commands:\n${stdout.slice(-2000)}`);
    return times;
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (wrapper.exitCode !== null) throw new Error(`libvirtd wrapper exited (${wrapper.exitCode}):\n${stderr}`);
    const ok = await run(VIRSH, ['-q', '-c', uri, 'version']).then(
      () => true,
      () => false,
    );
    if (ok) return { uri, socket, pid: wrapper.pid!, batch, stop, libvirtdPid: () => childNamed(wrapper.pid!, 'libvirtd') };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`libvirtd did not answer within 120 s:\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}


/** The pid of the child of `parent` whose command name is `name` (from /proc/<pid>/stat). */
function childNamed(parent: number, name: string): number {
  for (const entry of readdirSync('/proc').filter((pid) => /^\d+$/.test(pid))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (comm === name && ppid === parent) return Number(entry);
    } catch {
      // gone already
    }
  }
  throw new Error(`no ${name} child of ${parent}`);
}
