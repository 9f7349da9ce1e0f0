import { connect } from '@nats-io/transport-node';

/** The baseline: a trivial NATS responder in its own process, replying with a fixed small JSON body. */
const [url, subject] = process.argv.slice(2);
const nc = await connect({ servers: url! });
const reply = new TextEncoder().encode(JSON.stringify({ result: { ok: true } }));
nc.subscribe(subject!, {
  callback: (_error, msg) => {
    msg.respond(reply);
  },
});
await nc.flush();
process.stdout.write('ready\n');
process.on('SIGTERM', () => void nc.close().then(() => process.exit(0)));
