import type { Msg } from '@nats-io/transport-node';
import { headers } from '@nats-io/transport-node';
import { ConsoleHeaders } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import { alreadyInHistory } from './console.js';

const chunk = (text: string) => ({ data: Buffer.from(text) }) as unknown as Msg;

describe('alreadyInHistory: output that came before the attach answer and is the end of its history', () => {
  it('counts the leading messages the history ends with, and only those', () => {
    const history = Buffer.from('boot log\nlogin: ');
    expect(alreadyInHistory(history, [chunk('log\n'), chunk('login: '), chunk('root')])).toBe(2);
    expect(alreadyInHistory(history, [chunk('after')])).toBe(0);
    expect(alreadyInHistory(history, [])).toBe(0);
    expect(alreadyInHistory(Buffer.alloc(0), [chunk('x')])).toBe(0);
  });

  it('stops at an end message', () => {
    const end = headers();
    end.set(ConsoleHeaders.End, 'stopped');
    expect(alreadyInHistory(Buffer.from('a'), [chunk('a'), { data: new Uint8Array(0), headers: end } as unknown as Msg])).toBe(1);
  });
});
