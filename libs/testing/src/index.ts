export { startNatsServer, freePort, type NatsServerHandle, type NatsServerOptions } from './nats-server.js';
export { findBinary, requireBinary, hasBinaryOrSkip } from './binaries.js';
