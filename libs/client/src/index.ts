export { VirtClient, DEFAULT_CALL_TIMEOUT_MS, type CallOptions, type NodeRegistration } from './client.js';
export { decodeReply, errorBodyOf, errorEnvelope, request, resultEnvelope, serve, type RequestOptions, type ServeHooks } from './rpc.js';
export {
  untilJetStreamReady,
  transientJetStreamWait,
  retryDelayMs,
  JetStreamNotReadyError,
  DEFAULT_JETSTREAM_READY_DEADLINE_MS,
  type JetStreamRetryOptions,
  type RetryLogger,
} from './jetstream-ready.js';
export {
  startHeartbeat,
  NodeRegistryCache,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_ONLINE_WITHIN_MS,
  type Heartbeat,
  type HeartbeatOptions,
  type NodeRegistryOptions,
  type RegisteredNode,
} from './node-registry.js';
export { RECONNECT_FOREVER } from './reconnect.js';
export { natsChunkBuffer, releaseNatsPayload, tuneNatsBuffers, whenNatsWritten } from './nats-buffers.js';
export { alreadyInHistory } from './console.js';
