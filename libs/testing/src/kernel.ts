import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';

/** Why KVM cannot be used here (open /dev/kvm read-write, as QEMU does), or undefined when it can. */
export function kvmUnusableReason(): string | undefined {
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
    return undefined;
  } catch (error) {
    return `/dev/kvm is not usable here (${(error as NodeJS.ErrnoException).code})`;
  }
}

/** Why logical volumes cannot be made here (no device-mapper in this kernel), or undefined when they can. */
export function deviceMapperMissingReason(): string | undefined {
  if (!existsSync('/dev/mapper/control')) return 'this kernel has no device-mapper (/dev/mapper/control is absent)';
  const probe = spawnSync('dmsetup', ['version'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.status !== 0) return `this kernel has no device-mapper (dmsetup version: ${(probe.stderr || probe.error?.message || 'failed').trim().split('\n')[0]})`;
  return undefined;
}

/** A test title that carries the reason it is skipped, so the skip list says why. */
export function titleWithSkipReason(title: string, reason: string | undefined): string {
  return reason === undefined ? title : `${title} [skipped: ${reason}]`;
}
