export { VirtClient, decodeReply, DEFAULT_CALL_TIMEOUT_MS, type CallOptions, type NodeRegistration } from './client.js';
