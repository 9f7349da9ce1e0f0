import { describe, expect, it } from 'vitest';
import { monitorReturn } from './qemu-monitor.js';

describe('monitorReturn', () => {
  it("answers QEMU's return value from the reply libvirt passes back", () => {
    expect(monitorReturn('{"return": {"status": "running", "running": true}, "id": "libvirt-7"}', 'QMP query-status')).toEqual({ status: 'running', running: true });
    expect(monitorReturn('{"return": {}, "id": "libvirt-8"}', 'QMP stop')).toEqual({});
  });

  it('fails an error reply with its description, and a reply that is no JSON', () => {
    expect(() => monitorReturn('{"id": "libvirt-9", "error": {"class": "CommandNotFound", "desc": "The command vb-nope has not been found"}}', 'QMP vb-nope')).toThrow(
      expect.objectContaining({ code: 'OPERATION_FAILED', message: 'QMP vb-nope: The command vb-nope has not been found' }),
    );
    expect(() => monitorReturn('not json', 'QMP x')).toThrow(expect.objectContaining({ code: 'OPERATION_FAILED' }));
  });
});
