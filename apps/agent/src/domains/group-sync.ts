/**
 * Shares one run of `work` (a directory fsync) among callers: a call while a run is in progress waits for the next run,
 * which starts when that one ends and serves every caller that came meanwhile.
 */
export class GroupSync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly work: () => Promise<void>) {}

  run(): Promise<void> {
    if (this.next) return this.next;
    if (!this.running) return this.start();
    // The run in progress may have begun before the caller's change: it needs the one after.
    const next: Promise<void> = this.running.then(
      (): Promise<void> => this.afterRunning(next),
      (): Promise<void> => this.afterRunning(next),
    );
    this.next = next;
    return next;
  }

  private afterRunning(next: Promise<void>): Promise<void> {
    if (this.next === next) this.next = undefined;
    return this.start();
  }

  private start(): Promise<void> {
    const running = this.work().finally(() => {
      if (this.running === running) this.running = undefined;
    });
    this.running = running;
    return running;
  }
}
