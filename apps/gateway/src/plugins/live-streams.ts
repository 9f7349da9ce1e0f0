import type { FastifyInstance } from 'fastify';
import { shared } from './skip-override.js';

/** A long-lived response (SSE, WebSocket) that must end before the server can close. */
export interface LiveStream {
  end(): void | Promise<void>;
}

export interface LiveStreams {
  add(stream: LiveStream): () => void;
  readonly size: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    liveStreams: LiveStreams;
  }
}

async function liveStreamsPlugin(app: FastifyInstance): Promise<void> {
  const streams = new Set<LiveStream>();
  app.decorate('liveStreams', {
    add(stream: LiveStream) {
      streams.add(stream);
      return () => streams.delete(stream);
    },
    get size() {
      return streams.size;
    },
  });
  // preClose runs before the HTTP server stops, so open streams end instead of holding close() forever.
  app.addHook('preClose', async () => {
    const ending = [...streams].map(async (stream) => stream.end());
    streams.clear();
    await Promise.allSettled(ending);
  });
}

export default shared(liveStreamsPlugin);
