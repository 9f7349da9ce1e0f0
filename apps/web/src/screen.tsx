import RFB from '@novnc/novnc';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Api, DomainRef } from './api.js';

/** A domain's screen through noVNC (token as the `virtbus.bearer.<token>` WebSocket subprotocol). */
export function Screen({ api, domain, name }: { api: Api; domain: DomainRef; name: string }) {
  const target = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('connecting');
  useEffect(() => {
    if (!target.current) return;
    const rfb = new RFB(target.current, api.socketUrl(domain, 'vnc'), { wsProtocols: api.wsProtocols(), shared: true });
    rfb.scaleViewport = true;
    rfb.addEventListener('connect', () => setStatus('connected'));
    rfb.addEventListener('disconnect', () => setStatus('disconnected'));
    return () => rfb.disconnect();
  }, [api, domain.node, domain.uuid]);
  return (
    <div role="region" aria-label={`Screen of ${name}`}>
      <p>
        Screen <small data-testid="vnc-status">({status})</small>
      </p>
      <div class="screen" ref={target} data-testid="vnc-screen" />
    </div>
  );
}
