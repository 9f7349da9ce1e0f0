import type { Msg } from '@nats-io/transport-node';
import { ConsoleHeaders } from '@virtbus/api-contract';

/** How many of the messages that came before the attach answer are the end of its history (sent there, not again). */
export function alreadyInHistory(history: Buffer, early: Msg[]): number {
  const data = early.findIndex((message) => message.headers?.get(ConsoleHeaders.End));
  for (let count = data < 0 ? early.length : data; count > 0; count--) {
    const joined = Buffer.concat(early.slice(0, count).map((message) => message.data));
    if (joined.length <= history.length && history.subarray(history.length - joined.length).equals(joined)) return count;
  }
  return 0;
}
