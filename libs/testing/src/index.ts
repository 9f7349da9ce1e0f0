export { startNatsServer, freePort, type NatsServerHandle, type NatsServerOptions } from './nats-server.js';
export { findBinary, requireBinary, hasBinaryOrSkip } from './binaries.js';
export { ensureTestGuest, GUEST_MARKERS, GUEST_FLAGS, GuestBuildError, type TestGuest } from './guest.js';
export { spawnAgent, REPO_ROOT, type AgentProcess, type AgentProcessOptions } from './agent-process.js';
export { ensureBusyboxRootfs, ROOTFS_MARKERS, RootfsBuildError } from './rootfs.js';
export { startPrometheus, type PrometheusHandle, type PromQueryResult } from './prometheus.js';
export { cgroupDirsNamed } from './cgroups.js';
export { addTestNetns, removeTestNetns, processesMentioning } from './netns.js';
export { kvmUnusableReason, deviceMapperMissingReason, titleWithSkipReason } from './kernel.js';
