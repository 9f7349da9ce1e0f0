import RFB from '@novnc/novnc';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Api, DomainRef } from './api.js';

/** A domain's screen through noVNC (token as the `virtbus.bearer.<token>` WebSocket subprotocol); asks for the VNC password when the server wants one. */
export function Screen({ api, domain, name }: { api: Api; domain: DomainRef; name: string }) {
  const target = useRef<HTMLDivElement>(null);
  const viewer = useRef<RFB | null>(null);
  const [status, setStatus] = useState('connecting');
  const [asking, setAsking] = useState(false);
  const [failure, setFailure] = useState<string>();
  const [password, setPassword] = useState('');
  // a refused password ends the RFB session: trying again opens a new one
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    if (!target.current) return;
    const rfb = new RFB(target.current, api.socketUrl(domain, 'vnc'), { wsProtocols: api.wsProtocols(), shared: true });
    viewer.current = rfb;
    rfb.scaleViewport = true;
    rfb.addEventListener('connect', () => setStatus('connected'));
    rfb.addEventListener('disconnect', () => setStatus('disconnected'));
    rfb.addEventListener('credentialsrequired', () => {
      setStatus('password required');
      setAsking(true);
    });
    rfb.addEventListener('securityfailure', (event) => setFailure((event as CustomEvent<{ reason?: string }>).detail.reason || 'authentication failed'));
    return () => rfb.disconnect();
  }, [api, domain.node, domain.uuid, attempt]);
  const send = (event: Event) => {
    event.preventDefault();
    viewer.current?.sendCredentials({ password });
    setPassword('');
    setAsking(false);
    setStatus('authenticating');
  };
  const retry = () => {
    setFailure(undefined);
    setStatus('connecting');
    setAttempt((n) => n + 1);
  };
  return (
    <div role="region" aria-label={`Screen of ${name}`}>
      <p>
        Screen <small data-testid="vnc-status">({status})</small>
      </p>
      {asking && (
        <form onSubmit={send} data-testid="vnc-credentials">
          <label>
            VNC password <input type="password" name="vnc-password" autocomplete="off" maxLength={8} value={password} onInput={(e) => setPassword(e.currentTarget.value)} autoFocus />
          </label>{' '}
          <button type="submit">Connect</button>
        </form>
      )}
      {failure && (
        <p role="alert" data-testid="vnc-failure">
          The VNC server refused the password: {failure}{' '}
          <button type="button" onClick={retry}>
            Try again
          </button>
        </p>
      )}
      <div class="screen" ref={target} data-testid="vnc-screen" />
    </div>
  );
}
