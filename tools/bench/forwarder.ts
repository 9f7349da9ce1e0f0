import { createServer } from 'node:http';
import { connect } from '@nats-io/transport-node';
import { VirtClient } from '@virtbus/client';

/** A second baseline: plain node:http that forwards every request as the same bus call, with no framework, auth or schemas. */
const [url, node, uuid, port] = process.argv.slice(2);
const nc = await connect({ servers: url!, noAsyncTraces: true });
const client = new VirtClient(nc);
const server = createServer((_request, response) => {
  client.call(node!, 'domain.get', { id: uuid! }).then(
    (domain) => {
      response.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      response.end(JSON.stringify(domain));
    },
    (error: unknown) => {
      response.writeHead(500);
      response.end(String(error));
    },
  );
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
// keep-alive sockets would hold close() open; the exit (which writes a --cpu-prof profile) must not wait for them
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => void nc.close().then(() => process.exit(0)));
});
