import { setTimeout as sleep } from 'node:timers/promises';
import { VirtError, type AsyncOperation, type MigrationRequest } from '@virtbus/api-contract';
import { resolveNode, type CommandContext } from './commands.js';
import { bytes } from './format.js';
import { ProgressMeter, progressBar } from './progress.js';

const POLL_MS = 250;

/** The migration's own figures after the bar. */
function migrationFigures(operation: AsyncOperation): string {
  const migration = operation.migration;
  return migration ? ` ${migration.phase}, pass ${migration.iteration}, ${bytes(migration.ramRemainingBytes)} RAM left` : '';
}

/** One status line: a bar, percent, bytes and the migration's own figures. */
export function progressLine(operation: AsyncOperation): string {
  const { percent, bytesProcessed, bytesTotal } = operation.progress;
  return `${progressBar(percent, bytesProcessed, bytesTotal)}${migrationFigures(operation)}`;
}

/** Starts the migration, then follows its operation with a progress bar on stderr until it ends. */
export async function migrate(ctx: CommandContext, id: string, request: MigrationRequest, progress: (line: string, final: boolean) => void): Promise<number> {
  const node = await resolveNode(ctx);
  // bytes, rate and time left from the meter; a migration's total can grow (dirty pages), so the ETA is a guess
  // the route takes the migration itself; the agent's request wraps it with the uuid and ticket
  let operation: AsyncOperation = await ctx.http.call('domain.migrate', { node, id }, request);
  const meter = new ProgressMeter(progress);
  while (operation.status === 'running') {
    meter.update(operation.progress.bytesProcessed, operation.progress.bytesTotal, migrationFigures(operation));
    await sleep(POLL_MS);
    operation = await ctx.http.call('operation.get', { node, id: operation.id });
  }
  meter.finish(operation.progress.bytesProcessed, operation.progress.bytesTotal, migrationFigures(operation));
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
