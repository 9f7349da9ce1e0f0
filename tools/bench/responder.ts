import { connect } from '@nats-io/transport-node';

/** The baseline: a trivial NATS responder in its own process, replying with a fixed JSON body (of `bytes` bytes when given). */
const [url, subject, bytes] = process.argv.slice(2);
const nc = await connect({ servers: url! });
const small = JSON.stringify({ result: { ok: true } });
// padded to the size of the answer it stands beside, so the bus moves as many bytes as the gateway sends
const body = bytes ? JSON.stringify({ result: { pad: 'x'.repeat(Math.max(0, Number(bytes) - '{"result":{"pad":""}}'.length)) } }) : small;
const reply = new TextEncoder().encode(body);
nc.subscribe(subject!, {
  callback: (_error, msg) => {
    msg.respond(reply);
  },
});
await nc.flush();
process.stdout.write('ready\n');
process.on('SIGTERM', () => void nc.close().then(() => process.exit(0)));
