import { describe, expect, it } from 'vitest';
import { guestInfoFromParams } from './guest-agent.js';

describe('guestInfoFromParams', () => {
  it("reads virDomainGetGuestInfo's typed parameters as the contract's GuestInfo (login times in ms → s)", () => {
    const s = (field: string, value: string) => ({ field, value: { type: 7, value } as const });
    const n = (field: string, value: number) => ({ field, value: { type: 1, value } as const });
    const info = guestInfoFromParams([
      s('os.id', 'debian'),
      s('os.pretty-name', 'Debian 12'),
      s('os.kernel-release', '6.1.0'),
      s('hostname', 'g1'),
      { field: 'user.count', value: { type: 2, value: 1 } },
      s('user.0.name', 'root'),
      { field: 'user.0.login-time', value: { type: 4, value: 1_700_000_000_500n } },
      s('timezone.name', 'UTC'),
      n('timezone.offset', 0),
    ]);
    expect(info).toEqual({ os: { id: 'debian', prettyName: 'Debian 12', kernelRelease: '6.1.0' }, hostname: 'g1', users: [{ name: 'root', loginTime: 1_700_000_000.5 }], timezone: { name: 'UTC', offsetSeconds: 0 } });
    expect(guestInfoFromParams([])).toEqual({ os: {}, hostname: '', users: [] });
  });
});
