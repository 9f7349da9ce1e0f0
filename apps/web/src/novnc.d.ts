// noVNC ships no types: the part of RFB the screen uses.
declare module '@novnc/novnc' {
  export default class RFB extends EventTarget {
    constructor(target: HTMLElement, url: string, options?: { wsProtocols?: string[]; shared?: boolean });
    scaleViewport: boolean;
    viewOnly: boolean;
    disconnect(): void;
    sendCtrlAltDel(): void;
    /** Answers `credentialsrequired` (VNC authentication asks for a password only). */
    sendCredentials(credentials: { password?: string; username?: string; target?: string }): void;
  }
}
