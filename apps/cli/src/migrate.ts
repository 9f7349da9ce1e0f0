import { setTimeout as sleep } from 'node:timers/promises';
import { VirtError, type AsyncOperation, type MigrationRequest } from '@virtbus/api-contract';
import { resolveNode, type CommandContext } from './commands.js';
import { bytes } from './format.js';

const POLL_MS = 250;
const BAR_WIDTH = 30;

/** One status line: a bar, percent, bytes and the migration's own figures. */
export function progressLine(operation: AsyncOperation): string {
  const { percent, bytesProcessed, bytesTotal } = operation.progress;
  const filled = Math.round((Math.min(100, percent) / 100) * BAR_WIDTH);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
  const migration = operation.migration;
  const extra = migration ? ` ${migration.phase}, pass ${migration.iteration}, ${bytes(migration.ramRemainingBytes)} RAM left` : '';
  return `${bar} ${percent.toFixed(1).padStart(5)}% ${bytes(bytesProcessed)}/${bytes(bytesTotal)}${extra}`;
}

/** Starts the migration, then follows its operation with a progress bar on stderr until it ends. */
export async function migrate(ctx: CommandContext, id: string, request: MigrationRequest, progress: (line: string, final: boolean) => void): Promise<number> {
  const node = await resolveNode(ctx);
  // the route takes the migration itself; the agent's request wraps it with the uuid and ticket
  let operation: AsyncOperation = await ctx.http.call('domain.migrate', { node, id }, request);
  while (operation.status === 'running') {
    progress(progressLine(operation), false);
    await sleep(POLL_MS);
    operation = await ctx.http.call('operation.get', { node, id: operation.id });
  }
  progress(progressLine(operation), true);
  if (ctx.output.json) ctx.output.out(JSON.stringify(operation, null, 2));
  if (operation.status !== 'success') {
    const error = operation.error;
    throw new VirtError(error?.code ?? 'OPERATION_FAILED', `migration ${operation.status}: ${error?.message ?? 'no reason given'}`);
  }
  const m = operation.migration;
  if (!ctx.output.json) {
    ctx.output.out(`Domain '${id}' migrated from ${node} to ${request.destination}${m?.totalTimeMs !== undefined ? ` in ${m.totalTimeMs} ms (downtime ${m.downtimeMs ?? '?'} ms)` : ''}`);
  }
  return 0;
}
