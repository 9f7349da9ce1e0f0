import { QmpCommandGroup, type ExecuteOptions } from './run.js';

/** Display and input (qapi/ui.json). */
export class UiCommands extends QmpCommandGroup {
  /** Writes the primary console's screen to `filename` on the host (PNG needs QEMU 7.1). */
  async screendump(filename: string, options?: ExecuteOptions): Promise<void> {
    await this.run('screendump', { filename, format: 'png' }, options);
  }

  /** Presses the keys together and releases them after `holdTimeMs` (QKeyCode names). */
  async sendKey(keys: readonly string[], holdTimeMs: number, options?: ExecuteOptions): Promise<void> {
    await this.run('send-key', { keys: keys.map((data) => ({ type: 'qcode', data })), 'hold-time': holdTimeMs }, options);
  }

  /** The VNC server's password (the server must have started with password=on). */
  async setVncPassword(password: string, options?: ExecuteOptions): Promise<void> {
    await this.run('set_password', { protocol: 'vnc', password }, options);
  }
}
