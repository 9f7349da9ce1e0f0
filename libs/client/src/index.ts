export { VirtClient, decodeReply, DEFAULT_CALL_TIMEOUT_MS, type CallOptions } from './client.js';
