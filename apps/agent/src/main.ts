import { pino } from 'pino';
import { initTracing } from '@virtbus/monitoring';
import { AGENT_VERSION, startAgent } from './agent.js';
import { USAGE, configFromArgs } from './config.js';

let config: ReturnType<typeof configFromArgs>;
try {
  config = configFromArgs(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`virtbus agent: ${(error as Error).message}\n`);
  process.exit(2);
}
if (config === 'help') {
  process.stdout.write(USAGE);
  process.exit(0);
}
const logger = pino({ level: config.logLevel });
let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
// A rejection nothing handled is a bug, but never a reason to leave every domain of the node without its agent.
process.on('unhandledRejection', (reason) => {
  logger.error({ err: reason }, 'unhandled promise rejection');
  agent?.countUnhandledRejection();
});
try {
  // exports spans only when the standard OTEL_* variables ask for it
  const tracing = await initTracing({ serviceName: 'virtbus-agent', serviceVersion: AGENT_VERSION, resourceAttributes: { 'virtbus.node': config.node } });
  const running = await startAgent({ ...config, logger });
  agent = running;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'agent stopping; domains keep running');
    running.close().then(() => tracing.shutdown()).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
} catch (error) {
  logger.fatal({ err: error }, 'agent could not start');
  process.exit(1);
}
