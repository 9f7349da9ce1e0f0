import type { CommandContext } from './commands.js';
import { resolveNode } from './commands.js';

const ESCAPE = 0x1d;

/** Attaches the terminal to a domain's serial console; Ctrl-] leaves, like virsh console. */
export async function consoleCommand(ctx: CommandContext, id: string, options: { force: boolean; readOnly: boolean }): Promise<number> {
  const node = await resolveNode(ctx);
  const url = ctx.http.url(`/v1/nodes/${encodeURIComponent(node)}/domains/${encodeURIComponent(id)}/console`);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  if (options.force) url.searchParams.set('force', 'true');
  if (options.readOnly) url.searchParams.set('mode', 'ro');
  // ws loads only here: every other cold CLI call stays short
  const { default: WebSocket } = await import('ws');
  const socket = new WebSocket(url, ctx.http.wsOptions);
  const stdin = process.stdin;
  return new Promise((resolve) => {
    const restore = () => {
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
    };
    socket.on('open', () => {
      process.stderr.write(`Connected to domain '${id}' on ${node}\r\nEscape character is ^] (Ctrl + ])\r\n`);
      if (stdin.isTTY) stdin.setRawMode(true);
      stdin.on('data', (data: Buffer) => {
        if (data.includes(ESCAPE)) {
          socket.close(1000);
          return;
        }
        if (!options.readOnly) socket.send(data);
      });
      stdin.resume();
    });
    socket.on('message', (data: Buffer) => process.stdout.write(data));
    socket.on('close', (code, reason) => {
      restore();
      // 1000 with a reason: the domain stopped (the gateway says how); without one: the user left with Ctrl-]
      if (code !== 1000 && code !== 1005) process.stderr.write(`\r\nconsole closed: ${reason.toString() || code}\r\n`);
      else if (reason.length > 0) process.stderr.write(`\r\nconsole ended: ${reason.toString()}\r\n`);
      resolve(code === 1000 || code === 1005 ? 0 : 1);
    });
    socket.on('error', (error) => {
      restore();
      process.stderr.write(`console error: ${error.message}\n`);
      resolve(1);
    });
  });
}
