import { pino } from 'pino';
import { startAgent } from './agent.js';
import { USAGE, configFromArgs } from './config.js';

const config = configFromArgs(process.argv.slice(2));
if (config === 'help') {
  process.stdout.write(USAGE);
  process.exit(0);
}
const logger = pino({ level: config.logLevel });
try {
  const agent = await startAgent({ ...config, logger });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'agent stopping; domains keep running');
    agent.close().then(
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
