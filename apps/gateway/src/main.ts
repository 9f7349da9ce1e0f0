import { parseArgs } from 'node:util';
import { initTracing } from '@virtbus/monitoring';
import { startGateway } from './index.js';

const { values } = parseArgs({
  options: {
    nats: { type: 'string', default: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222' },
    host: { type: 'string', default: process.env['GATEWAY_HOST'] ?? '127.0.0.1' },
    port: { type: 'string', default: process.env['GATEWAY_PORT'] ?? '8080' },
  },
  strict: true,
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  console.error(`invalid --port: ${values.port}`);
  process.exit(2);
}

// exports spans only when the standard OTEL_* variables ask for it
const tracing = initTracing({ serviceName: 'virtbus-gateway' });
const gateway = await startGateway({
  natsUrl: values.nats.split(','),
  host: values.host,
  port,
  logger: { level: process.env['LOG_LEVEL'] ?? 'info' },
});
gateway.app.log.info({ url: gateway.url, nats: values.nats }, 'gateway listening');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    gateway.app.log.info({ signal }, 'gateway stopping');
    gateway.close().then(() => tracing.shutdown()).then(
      () => process.exit(0),
      (error: unknown) => {
        gateway.app.log.error({ err: error }, 'gateway close failed');
        process.exit(1);
      },
    );
  });
}
