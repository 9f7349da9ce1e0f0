import { bytes } from './format.js';

/** Where progress lines go: redrawn in place on a terminal, only the last one otherwise. */
export type ProgressSink = (line: string, final: boolean) => void;

/** At most 10 redraws a second: a fast transfer reports every chunk, a terminal needs far fewer. */
export const REDRAW_MS = 100;
/** The rate is the bytes of the last few seconds over their time, so it follows a transfer that speeds up or stalls. */
const RATE_WINDOW_MS = 3000;
const SAMPLE_MS = 50;
const BAR_WIDTH = 30;

export function progressBar(percent: number, done: number, total: number | undefined): string {
  const clamped = Math.max(0, Math.min(100, percent));
  const filled = Math.round((clamped / 100) * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${clamped.toFixed(1).padStart(5)}% ${bytes(done)}${total !== undefined ? `/${bytes(total)}` : ''}`;
}

/** Seconds as m:ss or h:mm:ss; `--:--` when unknown. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const whole = Math.round(seconds);
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor((whole % 3600) / 60), whole % 60];
  const pad = (value: number) => String(value).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** One transfer's progress line (bar, percent, bytes, rate, time left), drawn at most every REDRAW_MS; the final line always. */
export class ProgressMeter {
  private readonly started: number;
  private readonly samples: { at: number; done: number }[] = [];
  private lastDraw = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly sink: ProgressSink,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
  }

  update(done: number, total: number | undefined, suffix = ''): void {
    const at = this.now();
    this.sample(at, done);
    if (at - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = at;
    const rate = this.rate(at, done);
    const left = rate !== undefined && rate > 0 && total !== undefined ? Math.max(0, total - done) / rate : Number.NaN;
    const figures = `${rate === undefined ? '--' : bytes(rate)}/s${total !== undefined ? ` ETA ${duration(left)}` : ''}`;
    this.sink(`${this.amount(done, total)} ${figures}${suffix}`, false);
  }

  finish(done: number, total: number | undefined, suffix = ''): void {
    const seconds = (this.now() - this.started) / 1000;
    const rate = seconds > 0 ? `${bytes(done / seconds)}/s ` : '';
    this.sink(`${this.amount(done, total, true)} ${rate}in ${duration(seconds)}${suffix}`, true);
  }

  private amount(done: number, total: number | undefined, final = false): string {
    if (total === undefined) return bytes(done);
    return progressBar(total > 0 ? (100 * done) / total : final ? 100 : 0, done, total);
  }

  private sample(at: number, done: number): void {
    const last = this.samples.at(-1);
    if (!last || at - last.at >= SAMPLE_MS) this.samples.push({ at, done });
    // keep one sample at or before the window's start, so the window is always covered
    while (this.samples.length > 1 && this.samples[1]!.at <= at - RATE_WINDOW_MS) this.samples.shift();
  }

  private rate(at: number, done: number): number | undefined {
    const first = this.samples[0];
    if (!first || at <= first.at) return undefined;
    return (done - first.done) / ((at - first.at) / 1000);
  }
}
