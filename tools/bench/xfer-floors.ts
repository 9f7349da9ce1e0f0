// Per-GiB CPU floors of what a volume transfer does, by hand: `npx tsx tools/bench/xfer-floors.ts` (FLOOR_MIB, default 1024).
// Each step runs in a fresh node process and reports its CPU s/GiB (user + system, all threads, /proc/self/stat): sha256 of
// 1 MiB buffers, a copy, and both ends of a loopback TCP hop (sender writes 1 MiB buffers, receiver takes Node's 64 KiB reads).
// Page-cache writes are left out: alone they vary with the disk's dirty state far more than inside a transfer. The transfer's processes can be read against these: what they spend beyond them is framing and JS.
import { spawn } from 'node:child_process';

const mib = Number(process.env.FLOOR_MIB ?? 1024);

/** The code of one step: it prints its own CPU seconds per GiB once done (a node -e script, ESM-free). */
const cpu = `const cpu = () => { const f = require('node:fs').readFileSync('/proc/self/stat', 'utf8'); const s = f.slice(f.lastIndexOf(')') + 2).split(' '); return (Number(s[11]) + Number(s[12])) / 100; };`;
const steps: Record<string, () => string[]> = {
  sha256: () => [`${cpu} const b = Buffer.alloc(1 << 20, 7); const c0 = cpu(); const h = require('node:crypto').createHash('sha256'); for (let i = 0; i < ${mib}; i++) h.update(b); h.digest(); console.log((cpu() - c0) / ${mib / 1024});`],
  copy: () => [`${cpu} const a = Buffer.alloc(1 << 20, 7); const b = Buffer.alloc(1 << 20); const c0 = cpu(); for (let i = 0; i < ${mib}; i++) a.copy(b); console.log((cpu() - c0) / ${mib / 1024});`],
  'tcp receive (64 KiB reads)': () => [
    `${cpu} const net = require('node:net'); const s = net.createServer((c) => { let n = 0; const c0 = cpu(); c.on('data', (d) => { n += d.length; }); c.on('end', () => { console.log((cpu() - c0) / ${mib / 1024}); s.close(); }); }); s.listen(0, '127.0.0.1', () => { const { port } = s.address(); const { spawn } = require('node:child_process'); spawn(process.execPath, ['-e', \`const b = Buffer.alloc(1 << 20, 7); const c = require('node:net').connect(\${port}, '127.0.0.1', () => { let i = 0; const go = () => { while (i < ${mib}) { i++; if (!c.write(b)) return c.once('drain', go); } c.end(); }; go(); });\`], { stdio: 'inherit' }); });`,
  ],
  'tcp receive into one reused 1 MiB buffer (onread)': () => [
    `${cpu} const net = require('node:net'); const { spawn } = require('node:child_process'); const sender = spawn(process.execPath, ['-e', \`const b = Buffer.alloc(1 << 20, 7); const s = require('node:net').createServer((c) => { let i = 0; const go = () => { while (i < ${mib}) { i++; if (!c.write(b)) return c.once('drain', go); } c.end(); s.close(); }; go(); }); s.listen(0, '127.0.0.1', () => console.log(s.address().port));\`], { stdio: ['ignore', 'pipe', 'inherit'] }); sender.stdout.once('data', (port) => { const c0 = cpu(); const c = net.connect({ port: Number(port), host: '127.0.0.1', onread: { buffer: Buffer.allocUnsafe(1 << 20), callback: () => true } }); c.on('end', () => console.log((cpu() - c0) / ${mib / 1024})); });`,
  ],
  'tcp send (1 MiB writes)': () => [
    `const net = require('node:net'); const s = net.createServer((c) => { c.resume(); c.on('end', () => s.close()); }); s.listen(0, '127.0.0.1', () => { const { port } = s.address(); const { spawn } = require('node:child_process'); spawn(process.execPath, ['-e', \`${cpu.replace(/`/g, '\\`')} const b = Buffer.alloc(1 << 20, 7); const c = require('node:net').connect(\${port}, '127.0.0.1', () => { const c0 = cpu(); let i = 0; const go = () => { while (i < ${mib}) { i++; if (!c.write(b)) return c.once('drain', go); } c.end(() => console.log((cpu() - c0) / ${mib / 1024})); }; go(); });\`], { stdio: 'inherit' }); });`,
  ],
};

console.log(`| step (${mib} MiB) | CPU s/GiB |\n|---|---|`);
for (const [name, args] of Object.entries(steps)) {
  const child = spawn(process.execPath, ['-e', ...args()], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((resolve) => child.once('exit', resolve));
  console.log(`| ${name} | ${Number(out.trim()).toFixed(2)} |`);
}
