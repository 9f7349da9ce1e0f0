import { describe, expect, it } from 'vitest';
import { sseMessages, type SseMessage } from './sse.js';

async function collect(parts: (string | Uint8Array)[]): Promise<SseMessage[]> {
  const encoder = new TextEncoder();
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for (const part of parts) yield typeof part === 'string' ? encoder.encode(part) : part;
  }
  const messages: SseMessage[] = [];
  for await (const message of sseMessages(chunks())) messages.push(message);
  return messages;
}

describe('sseMessages', () => {
  it('yields each message once its blank line arrives, whatever the chunks split', async () => {
    const messages = await collect([': ready\n\nid: 4', '\nevent: lifecycle\ndata: {"a":1}\n', '\nid: 5\ndata: {"a":2}\n\nid: 6\ndata: {"a":']);
    expect(messages).toEqual([
      { id: undefined, event: undefined, data: undefined, comments: ['ready'] },
      { id: '4', event: 'lifecycle', data: '{"a":1}', comments: [] },
      { id: '5', event: undefined, data: '{"a":2}', comments: [] },
    ]);
  });

  it('decodes a character split between two chunks', async () => {
    const bytes = new TextEncoder().encode('data: é\n\n');
    expect(await collect([bytes.slice(0, 7), bytes.slice(7)])).toEqual([{ id: undefined, event: undefined, data: 'é', comments: [] }]);
  });
});
