import type { ExecuteOptions } from '../monitor.js';

/** Sends one command over the domain's monitor; command groups get this, never the monitor itself. */
export type QmpRun = <T = void>(command: string, args?: object, options?: ExecuteOptions) => Promise<T>;

export type { ExecuteOptions };

/** A group of typed QMP commands sent through one `run`. */
export abstract class QmpCommandGroup {
  constructor(protected readonly run: QmpRun) {}
}
