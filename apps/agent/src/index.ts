export { startAgent, AGENT_VERSION, type Agent, type AgentConfig } from './agent.js';
export { configFromArgs, nodeNameFromHost, USAGE } from './config.js';
export type { EventStreamLimits } from './events/publisher.js';
