import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Api, DomainRef } from './api.js';

/** A domain's serial console: xterm.js on the console WebSocket (history first, then live output; keys go back as text frames). */
export function SerialConsole({ api, domain, name }: { api: Api; domain: DomainRef; name: string }) {
  const target = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('connecting');
  useEffect(() => {
    if (!target.current) return;
    const terminal = new Terminal({ convertEol: false, scrollback: 2000, fontSize: 13, rows: 24, cols: 100 });
    terminal.open(target.current);
    const socket = new WebSocket(api.socketUrl(domain, 'console'), api.wsProtocols());
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => setStatus('connected');
    socket.onmessage = (message: MessageEvent<ArrayBuffer | string>) => terminal.write(typeof message.data === 'string' ? message.data : new Uint8Array(message.data));
    socket.onclose = (close) => setStatus(close.reason ? `closed: ${close.reason}` : 'closed');
    const input = terminal.onData((data) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(data);
    });
    terminal.focus();
    return () => {
      input.dispose();
      socket.close();
      terminal.dispose();
    };
  }, [api, domain.node, domain.uuid]);
  return (
    <div role="region" aria-label={`Serial console of ${name}`}>
      <p>
        Serial console <small data-testid="serial-status">({status})</small>
      </p>
      <div class="terminal" ref={target} data-testid="serial-console" />
    </div>
  );
}
