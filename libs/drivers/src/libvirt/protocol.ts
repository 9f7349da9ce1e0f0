import {
  xdrArray,
  xdrDouble,
  xdrHyper,
  xdrUnion,
  xdrFixedOpaque,
  xdrInt,
  xdrOptional,
  xdrString,
  xdrStruct,
  xdrUhyper,
  xdrUint,
  xdrVarOpaque,
  xdrVoid,
  type Codec,
  type CodecType,
} from './xdr.js';

/**
 * libvirt's remote protocol as this driver uses it: the packet header, the keepalive program and ONE table of the
 * remote program's procedures with their argument and reply layouts. Numbers and layouts follow libvirt's
 * remote_protocol.x / virnetprotocol.x / virkeepaliveprotocol.x (written here from those definitions, each checked by
 * libs/drivers/test/libvirt-remote.test.ts against a real libvirtd).
 */

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
/** libvirt-qemu's program (qemu_protocol.x): QEMU-specific calls such as the guest agent pass-through. */
export const QEMU_PROGRAM = 0x20008087;
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const KeepaliveProcedure = { PING: 1, PONG: 2 } as const;

/** virNetMessageType */
export const MessageType = { CALL: 0, REPLY: 1, MESSAGE: 2, STREAM: 3, CALL_WITH_FDS: 4, REPLY_WITH_FDS: 5, STREAM_HOLE: 6 } as const;
/** virNetMessageStatus */
export const MessageStatus = { OK: 0, ERROR: 1, CONTINUE: 2 } as const;

/** Length word + 6 header words. */
export const HEADER_BYTES = 28;
/** VIR_NET_MESSAGE_MAX: the largest packet either side accepts. */
export const MESSAGE_MAX = 32 * 1024 * 1024;
const STRING_MAX = 4 * 1024 * 1024;
const DOMAIN_LIST_MAX = 16384;
const AUTH_TYPE_LIST_MAX = 20;
const SEND_KEY_MAX = 16;
const FSFREEZE_MOUNTPOINTS_MAX = 256;
const IP_ADDR_MAX = 2048;
const INTERFACE_MAX = 2048;
const GUEST_INFO_PARAMS_MAX = 2048;
export const UUID_BYTES = 16;

export interface PacketHeader {
  program: number;
  version: number;
  procedure: number;
  type: number;
  serial: number;
  status: number;
}

export function encodePacket(header: PacketHeader, body: Buffer): Buffer {
  const packet = Buffer.alloc(HEADER_BYTES + body.length);
  packet.writeUInt32BE(packet.length, 0);
  packet.writeUInt32BE(header.program, 4);
  packet.writeUInt32BE(header.version, 8);
  packet.writeInt32BE(header.procedure, 12);
  packet.writeInt32BE(header.type, 16);
  packet.writeUInt32BE(header.serial, 20);
  packet.writeInt32BE(header.status, 24);
  body.copy(packet, HEADER_BYTES);
  return packet;
}

/** Header of one whole packet (its length word included). */
export function decodeHeader(packet: Buffer): PacketHeader {
  return {
    program: packet.readUInt32BE(4),
    version: packet.readUInt32BE(8),
    procedure: packet.readInt32BE(12),
    type: packet.readInt32BE(16),
    serial: packet.readUInt32BE(20),
    status: packet.readInt32BE(24),
  };
}

const nonnullString = xdrString(STRING_MAX);
const optionalString = xdrOptional(nonnullString);
const uuid = xdrFixedOpaque(UUID_BYTES);

/** remote_nonnull_domain */
export const DomainRef = xdrStruct({ name: nonnullString, uuid, id: xdrInt });
export type DomainRef = CodecType<typeof DomainRef>;
const NetworkRef = xdrStruct({ name: nonnullString, uuid });
/** remote_nonnull_domain_snapshot */
const SnapshotRef = xdrStruct({ name: nonnullString, dom: DomainRef });

/** remote_error: the body of every reply with status ERROR. */
export const RemoteError = xdrStruct({
  code: xdrInt,
  domain: xdrInt,
  message: optionalString,
  level: xdrInt,
  dom: xdrOptional(DomainRef),
  str1: optionalString,
  str2: optionalString,
  str3: optionalString,
  int1: xdrInt,
  int2: xdrInt,
  net: xdrOptional(NetworkRef),
});
export type RemoteError = CodecType<typeof RemoteError>;

/** remote_typed_param: virTypedParameter's name and a value discriminated by its type (1 int … 7 string). */
export const TypedParam = xdrStruct({
  field: nonnullString,
  value: xdrUnion({ 1: xdrInt, 2: xdrUint, 3: xdrHyper, 4: xdrUhyper, 5: xdrDouble, 6: xdrInt, 7: nonnullString }),
});
export type TypedParam = CodecType<typeof TypedParam>;
const TYPED_PARAMS_MAX = 262_144;

/** REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX, REMOTE_MIGRATE_COOKIE_MAX, REMOTE_DOMAIN_JOB_STATS_MAX */
const MIGRATE_PARAMS_MAX = 64;
const MIGRATE_COOKIE_MAX = 4_194_304;
const JOB_STATS_MAX = 64;

const domainOnly = xdrStruct({ dom: DomainRef });
const domainFlags = xdrStruct({ dom: DomainRef, flags: xdrUint });
const domainReply = xdrStruct({ dom: DomainRef });
const deviceXml = xdrStruct({ dom: DomainRef, xml: nonnullString, flags: xdrUint });
const BLOCK_IO_TUNE_MAX = 32;
const BLOCK_COPY_PARAMS_MAX = 16;

function procedure<A, R>(number: number, args: Codec<A>, reply: Codec<R>, program: number = REMOTE_PROGRAM) {
  return { number, args, reply, program };
}

/** The remote program's procedures this driver calls (REMOTE_PROC_*). */
export const Procedures = {
  connectOpen: procedure(1, xdrStruct({ name: optionalString, flags: xdrUint }), xdrVoid),
  connectClose: procedure(2, xdrVoid, xdrVoid),
  connectGetType: procedure(3, xdrVoid, xdrStruct({ type: nonnullString })),
  /** Hypervisor version as major * 1,000,000 + minor * 1,000 + release. */
  connectGetVersion: procedure(4, xdrVoid, xdrStruct({ hvVer: xdrUhyper })),
  domainCreate: procedure(9, domainOnly, xdrVoid),
  domainDefineXml: procedure(11, xdrStruct({ xml: nonnullString }), domainReply),
  domainDestroy: procedure(12, domainOnly, xdrVoid),
  domainGetXmlDesc: procedure(14, domainFlags, xdrStruct({ xml: nonnullString })),
  /** state and nrVirtCpu are unsigned char / short in C, one XDR word each. */
  domainGetInfo: procedure(
    16,
    domainOnly,
    xdrStruct({ state: xdrUint, maxMem: xdrUhyper, memory: xdrUhyper, nrVirtCpu: xdrUint, cpuTime: xdrUhyper }),
  ),
  domainLookupByName: procedure(23, xdrStruct({ name: nonnullString }), domainReply),
  domainLookupByUuid: procedure(24, xdrStruct({ uuid }), domainReply),
  domainReboot: procedure(27, domainFlags, xdrVoid),
  domainResume: procedure(28, domainOnly, xdrVoid),
  domainShutdown: procedure(33, domainOnly, xdrVoid),
  domainSuspend: procedure(34, domainOnly, xdrVoid),
  domainUndefine: procedure(35, domainOnly, xdrVoid),
  domainSnapshotCreateXml: procedure(185, xdrStruct({ dom: DomainRef, xmlDesc: nonnullString, flags: xdrUint }), xdrStruct({ snap: SnapshotRef })),
  domainSnapshotLookupByName: procedure(189, xdrStruct({ dom: DomainRef, name: nonnullString, flags: xdrUint }), xdrStruct({ snap: SnapshotRef })),
  domainRevertToSnapshot: procedure(192, xdrStruct({ snap: SnapshotRef, flags: xdrUint }), xdrVoid),
  domainSnapshotDelete: procedure(193, xdrStruct({ snap: SnapshotRef, flags: xdrUint }), xdrVoid),
  connectGetHostname: procedure(59, xdrVoid, xdrStruct({ hostname: nonnullString })),
  connectSupportsFeature: procedure(60, xdrStruct({ feature: xdrInt }), xdrStruct({ supported: xdrInt })),
  authList: procedure(66, xdrVoid, xdrStruct({ types: xdrArray(xdrInt, AUTH_TYPE_LIST_MAX) })),
  /** libvirt's own version, same encoding as connectGetVersion. */
  connectGetLibVersion: procedure(157, xdrVoid, xdrStruct({ libVer: xdrUhyper })),
  /** flags: virDomainCreateFlags (1 = START_PAUSED). */
  domainCreateWithFlags: procedure(196, domainFlags, domainReply),
  /** flags: virDomainModificationImpact (1 = AFFECT_LIVE). */
  domainSetVcpusFlags: procedure(199, xdrStruct({ dom: DomainRef, nvcpus: xdrUint, flags: xdrUint }), xdrVoid),
  /** memory in KiB; flags as domainSetVcpusFlags. */
  domainSetMemoryFlags: procedure(204, xdrStruct({ dom: DomainRef, memory: xdrUhyper, flags: xdrUint }), xdrVoid),
  domainGetState: procedure(212, domainFlags, xdrStruct({ state: xdrInt, reason: xdrInt })),
  domainUndefineFlags: procedure(231, domainFlags, xdrVoid),
  domainReset: procedure(245, domainFlags, xdrVoid),
  /** Writes libvirt's save image (its XML, then the hypervisor's state) to `to` on libvirtd's host; the domain stops. */
  domainSaveFlags: procedure(232, xdrStruct({ dom: DomainRef, to: nonnullString, dxml: optionalString, flags: xdrUint }), xdrVoid),
  /** flags: SaveFlag (RUNNING or PAUSED overrides the state the image was saved in). */
  domainRestoreFlags: procedure(233, xdrStruct({ from: nonnullString, dxml: optionalString, flags: xdrUint }), xdrVoid),
  /** The stream of one console (devName null: the first); data then flows as STREAM packets of this call's serial. */
  domainOpenConsole: procedure(201, xdrStruct({ dom: DomainRef, devName: optionalString, flags: xdrUint }), xdrVoid),
  /** eventID: virDomainEventID; dom null: every domain. The callbackID tags the event messages (DomainEvents). */
  connectDomainEventCallbackRegisterAny: procedure(316, xdrStruct({ eventID: xdrInt, dom: xdrOptional(DomainRef) }), xdrStruct({ callbackID: xdrInt })),
  connectDomainEventCallbackDeregisterAny: procedure(317, xdrStruct({ callbackID: xdrInt }), xdrVoid),
  /** doms empty: every domain the flags select; stats: virDomainStatsTypes bits. */
  connectGetAllDomainStats: procedure(
    344,
    xdrStruct({ doms: xdrArray(DomainRef, DOMAIN_LIST_MAX), stats: xdrUint, flags: xdrUint }),
    xdrStruct({ retStats: xdrArray(xdrStruct({ dom: DomainRef, params: xdrArray(TypedParam, TYPED_PARAMS_MAX) }), DOMAIN_LIST_MAX) }),
  ),
  connectListAllDomains: procedure(
    273,
    xdrStruct({ needResults: xdrInt, flags: xdrUint }),
    xdrStruct({ domains: xdrArray(DomainRef, DOMAIN_LIST_MAX), ret: xdrUint }),
  ),
  /** The screen as a stream (data follows as STREAM packets of the call's serial); mime: QEMU's PPM or the test driver's PNG. */
  domainScreenshot: procedure(211, xdrStruct({ dom: DomainRef, screen: xdrUint, flags: xdrUint }), xdrStruct({ mime: optionalString })),
  /** codeset: KeycodeSet; holdtime in ms; at most 16 keycodes. */
  domainSendKey: procedure(226, xdrStruct({ dom: DomainRef, codeset: xdrUint, holdtime: xdrUint, keycodes: xdrArray(xdrUint, SEND_KEY_MAX), flags: xdrUint }), xdrVoid),
  /** Guest agent calls (libvirt talks to qemu-ga on the domain's org.qemu.guest_agent.0 channel). */
  domainFsFreeze: procedure(335, xdrStruct({ dom: DomainRef, mountpoints: xdrArray(nonnullString, FSFREEZE_MOUNTPOINTS_MAX), flags: xdrUint }), xdrStruct({ filesystems: xdrInt })),
  domainFsThaw: procedure(336, xdrStruct({ dom: DomainRef, mountpoints: xdrArray(nonnullString, FSFREEZE_MOUNTPOINTS_MAX), flags: xdrUint }), xdrStruct({ filesystems: xdrInt })),
  domainGetTime: procedure(337, domainFlags, xdrStruct({ seconds: xdrHyper, nseconds: xdrUint })),
  /** flags: TimeFlag (SYNC: the guest reads its RTC, seconds ignored). */
  domainSetTime: procedure(338, xdrStruct({ dom: DomainRef, seconds: xdrHyper, nseconds: xdrUint, flags: xdrUint }), xdrVoid),
  /** source: AddressSource; ip type 0 ipv4, 1 ipv6. */
  domainInterfaceAddresses: procedure(
    353,
    xdrStruct({ dom: DomainRef, source: xdrUint, flags: xdrUint }),
    xdrStruct({ ifaces: xdrArray(xdrStruct({ name: nonnullString, hwaddr: optionalString, addrs: xdrArray(xdrStruct({ type: xdrInt, addr: nonnullString, prefix: xdrUint }), IP_ADDR_MAX) }), INTERFACE_MAX) }),
  ),
  /** flags: 1 = the password is already crypted. */
  domainSetUserPassword: procedure(357, xdrStruct({ dom: DomainRef, user: optionalString, password: optionalString, flags: xdrUint }), xdrVoid),
  /** types: GuestInfoType bits; typed parameters such as os.id, hostname, user.0.name, timezone.offset. */
  domainGetGuestInfo: procedure(418, xdrStruct({ dom: DomainRef, types: xdrUint, flags: xdrUint }), xdrStruct({ params: xdrArray(TypedParam, GUEST_INFO_PARAMS_MAX) })),
  /** QEMU_PROC_DOMAIN_AGENT_COMMAND: one qemu-ga JSON command passed through (timeout in seconds, or AgentTimeout); libvirt taints the domain. */
  qemuDomainAgentCommand: procedure(3, xdrStruct({ dom: DomainRef, cmd: nonnullString, timeout: xdrInt, flags: xdrUint }), xdrStruct({ result: optionalString }), QEMU_PROGRAM),
  /** QEMU_PROC_DOMAIN_MONITOR_COMMAND: one QMP command as JSON (QEMU's whole reply comes back, `error` included) or, with MonitorFlag.HMP, an HMP line (its text); libvirt taints the domain. */
  qemuDomainMonitorCommand: procedure(1, xdrStruct({ dom: DomainRef, cmd: nonnullString, flags: xdrUint }), xdrStruct({ result: nonnullString }), QEMU_PROGRAM),
  /** The host's capabilities XML (guest architectures and their machine types). */
  connectGetCapabilities: procedure(7, xdrVoid, xdrStruct({ capabilities: nonnullString })),
  /** Live migration, v3 with typed parameters; with MigrateFlag.PEER2PEER libvirtd connects to `dconnuri` and runs prepare, finish and confirm itself. */
  domainMigratePerform3Params: procedure(
    305,
    xdrStruct({ dom: DomainRef, dconnuri: optionalString, params: xdrArray(TypedParam, MIGRATE_PARAMS_MAX), cookieIn: xdrVarOpaque(MIGRATE_COOKIE_MAX), flags: xdrUint }),
    xdrStruct({ cookieOut: xdrVarOpaque(MIGRATE_COOKIE_MAX) }),
  ),
  /** The running job's figures as typed parameters (memory_processed, memory_total, …); type: virDomainJobType. */
  domainGetJobStats: procedure(298, domainFlags, xdrStruct({ type: xdrInt, params: xdrArray(TypedParam, JOB_STATS_MAX) })),
  domainAbortJob: procedure(164, domainOnly, xdrVoid),
  /** The longest pause (ms) the running migration may cause when it switches over; set while the job runs. */
  domainMigrateSetMaxDowntime: procedure(166, xdrStruct({ dom: DomainRef, downtime: xdrUhyper, flags: xdrUint }), xdrVoid),
  /** xml: one device element (`<disk>`, `<interface>`); flags: DeviceFlag. */
  domainAttachDeviceFlags: procedure(160, deviceXml, xdrVoid),
  /** Asks the guest to release the device; libvirt answers before a slow guest did (the device leaves the live XML then). */
  domainDetachDeviceFlags: procedure(161, deviceXml, xdrVoid),
  /** Changes a device in place: cdrom media (no `<source>`: eject), NIC link state, graphics passwd. */
  domainUpdateDeviceFlags: procedure(174, deviceXml, xdrVoid),
  /** path: the disk's target (`vda`) or source. */
  domainBlockStats: procedure(
    64,
    xdrStruct({ dom: DomainRef, path: nonnullString }),
    xdrStruct({ rdReq: xdrHyper, rdBytes: xdrHyper, wrReq: xdrHyper, wrBytes: xdrHyper, errs: xdrHyper }),
  ),
  /** flags: BlockJobAbortFlag (PIVOT: switch a ready copy or active commit over). */
  domainBlockJobAbort: procedure(237, xdrStruct({ dom: DomainRef, path: nonnullString, flags: xdrUint }), xdrVoid),
  /** found 0: no job on the disk; type: virDomainBlockJobType; cur/end: progress (bytes). flags 1 = BANDWIDTH_BYTES. */
  domainGetBlockJobInfo: procedure(
    238,
    xdrStruct({ dom: DomainRef, path: nonnullString, flags: xdrUint }),
    xdrStruct({ found: xdrInt, type: xdrInt, bandwidth: xdrUhyper, cur: xdrUhyper, end: xdrUhyper }),
  ),
  /** Pulls the whole backing chain into the top image (bandwidth in bytes/s with BlockFlag.PULL_BANDWIDTH_BYTES). */
  domainBlockPull: procedure(240, xdrStruct({ dom: DomainRef, path: nonnullString, bandwidth: xdrUhyper, flags: xdrUint }), xdrVoid),
  /** size in bytes with BlockFlag.RESIZE_BYTES (else KiB). */
  domainBlockResize: procedure(251, xdrStruct({ dom: DomainRef, disk: nonnullString, size: xdrUhyper, flags: xdrUint }), xdrVoid),
  /** params: blkdeviotune's names (total_bytes_sec …) as unsigned 64-bit values; flags: AffectFlag. */
  domainSetBlockIoTune: procedure(252, xdrStruct({ dom: DomainRef, disk: nonnullString, params: xdrArray(TypedParam, BLOCK_IO_TUNE_MAX), flags: xdrUint }), xdrVoid),
  /** nparams 0: answers how many there are (params empty); then called with that count. */
  domainGetBlockIoTune: procedure(
    253,
    xdrStruct({ dom: DomainRef, disk: optionalString, nparams: xdrInt, flags: xdrUint }),
    xdrStruct({ params: xdrArray(TypedParam, BLOCK_IO_TUNE_MAX), nparams: xdrInt }),
  ),
  /** blockpull down to `base` (kept, with what is below it); same flags as domainBlockPull. */
  domainBlockRebase: procedure(266, xdrStruct({ dom: DomainRef, path: nonnullString, base: optionalString, bandwidth: xdrUhyper, flags: xdrUint }), xdrVoid),
  /** top null: the active layer (needs BlockFlag.COMMIT_ACTIVE; the job ends READY and waits for a pivot); base null: the chain's bottom. */
  domainBlockCommit: procedure(
    290,
    xdrStruct({ dom: DomainRef, disk: nonnullString, base: optionalString, top: optionalString, bandwidth: xdrUhyper, flags: xdrUint }),
    xdrVoid,
  ),
  /** destxml: a `<disk>` naming the destination; params: bandwidth (bytes/s) …; the job ends READY and mirrors until a pivot or abort. */
  domainBlockCopy: procedure(
    345,
    xdrStruct({ dom: DomainRef, path: nonnullString, destxml: nonnullString, params: xdrArray(TypedParam, BLOCK_COPY_PARAMS_MAX), flags: xdrUint }),
    xdrVoid,
  ),
} as const;
export type ProcedureName = keyof typeof Procedures;
export type ProcedureArgs<P extends ProcedureName> = CodecType<(typeof Procedures)[P]['args']>;
export type ProcedureReply<P extends ProcedureName> = CodecType<(typeof Procedures)[P]['reply']>;

const withCallback = <F extends Record<string, Codec<unknown>>>(fields: F) => xdrStruct({ callbackID: xdrInt, msg: xdrStruct({ dom: DomainRef, ...fields }) });
const flatWithCallback = <F extends Record<string, Codec<unknown>>>(fields: F) => xdrStruct({ callbackID: xdrInt, dom: DomainRef, ...fields });

/**
 * Domain events: the virDomainEventID to register, the procedure number libvirtd sends them with (type MESSAGE) and
 * their layout. Older events nest their fields in `msg`; the ones added later (agent lifecycle, device added,
 * tunable, metadata change) are flat.
 */
export const DomainEvents = {
  lifecycle: { eventId: 0, procedure: 318, layout: withCallback({ event: xdrInt, detail: xdrInt }) },
  reboot: { eventId: 1, procedure: 319, layout: withCallback({}) },
  rtcChange: { eventId: 2, procedure: 320, layout: withCallback({ offset: xdrHyper }) },
  watchdog: { eventId: 3, procedure: 321, layout: withCallback({ action: xdrInt }) },
  ioError: { eventId: 4, procedure: 322, layout: withCallback({ srcPath: nonnullString, devAlias: nonnullString, action: xdrInt }) },
  /** BLOCK_JOB_2 (not BLOCK_JOB, which names the disk by its source path): `dst` is the disk's target, as the qemu driver reports it. */
  blockJob2: { eventId: 16, procedure: 339, layout: flatWithCallback({ dst: nonnullString, type: xdrInt, status: xdrInt }) },
  diskChange: { eventId: 9, procedure: 327, layout: withCallback({ oldSrcPath: optionalString, newSrcPath: optionalString, devAlias: nonnullString, reason: xdrInt }) },
  trayChange: { eventId: 10, procedure: 328, layout: withCallback({ devAlias: nonnullString, reason: xdrInt }) },
  balloonChange: { eventId: 13, procedure: 331, layout: withCallback({ actual: xdrUhyper }) },
  deviceRemoved: { eventId: 15, procedure: 333, layout: withCallback({ devAlias: nonnullString }) },
  agentLifecycle: { eventId: 18, procedure: 348, layout: flatWithCallback({ state: xdrInt, reason: xdrInt }) },
  deviceAdded: { eventId: 19, procedure: 354, layout: flatWithCallback({ devAlias: nonnullString }) },
  metadataChange: { eventId: 23, procedure: 379, layout: flatWithCallback({ type: xdrInt, nsuri: optionalString }) },
} as const;
export type DomainEventName = keyof typeof DomainEvents;

/** virKeycodeSet (LINUX: linux/input-event-codes.h numbers). */
export const KeycodeSet = { LINUX: 0, XT: 1, ATSET1: 2, QNUM: 9 } as const;
/** virDomainInterfaceAddressesSource */
export const AddressSource = { LEASE: 0, AGENT: 1, ARP: 2 } as const;
/** virDomainGuestInfoTypes */
export const GuestInfoType = { USERS: 1, OS: 2, TIMEZONE: 4, HOSTNAME: 8 } as const;
/** virDomainSetTimeFlags */
export const TimeFlag = { SYNC: 1 } as const;
/** virDomainQemuMonitorCommandFlags */
export const MonitorFlag = { HMP: 1 } as const;
/** virDomainQemuAgentCommandTimeoutValues (else seconds). */
export const AgentTimeout = { BLOCK: -2, DEFAULT: -1, NOWAIT: 0 } as const;

/** virDomainModificationImpact */
export const AffectFlag = { CURRENT: 0, LIVE: 1, CONFIG: 2 } as const;
/** virDomainDeviceModifyFlags (AFFECT_* plus FORCE). */
export const DeviceFlag = { ...AffectFlag, FORCE: 4 } as const;
/** Flags of the block procedures: virDomainBlockJobAbortFlags, virDomainBlockCommitFlags, virDomainBlockRebaseFlags / PullFlags, virDomainBlockCopyFlags, virDomainBlockResizeFlags, virDomainBlockJobInfoFlags. */
export const BlockFlag = {
  ABORT_PIVOT: 2,
  COMMIT_ACTIVE: 4,
  COMMIT_BANDWIDTH_BYTES: 16,
  PULL_BANDWIDTH_BYTES: 64,
  /** The copy job is not kept across a libvirtd restart: what lets a persistent domain copy. */
  COPY_TRANSIENT_JOB: 4,
  RESIZE_BYTES: 1,
  INFO_BANDWIDTH_BYTES: 1,
} as const;
/** virDomainBlockJobType and virConnectDomainEventBlockJobStatus by number. */
export const BlockJobTypeNames = ['UNKNOWN', 'PULL', 'COPY', 'COMMIT', 'ACTIVE_COMMIT', 'BACKUP'] as const;
export const BlockJobStatus = { COMPLETED: 0, FAILED: 1, CANCELED: 2, READY: 3 } as const;
/** virDomainSaveRestoreFlags */
export const SaveFlag = { BYPASS_CACHE: 1, RUNNING: 2, PAUSED: 4 } as const;
/** virDomainXMLFlags */
export const XmlFlag = { SECURE: 1, INACTIVE: 2 } as const;

/** virDomainMigrateFlags this driver sets */
export const MigrateFlag = { LIVE: 1, PEER2PEER: 2, PERSIST_DEST: 8, PAUSED: 32, AUTO_CONVERGE: 8192 } as const;
/** virDomainJobType: NONE, BOUNDED, UNBOUNDED, COMPLETED, FAILED, CANCELLED */
export const JobType = { NONE: 0, BOUNDED: 1, UNBOUNDED: 2, COMPLETED: 3, FAILED: 4, CANCELLED: 5 } as const;

/** virDomainStatsTypes */
export const StatsGroup = { STATE: 1, CPU_TOTAL: 2, BALLOON: 4, VCPU: 8, INTERFACE: 16, BLOCK: 32 } as const;

/** virDrvFeature values passed to connectSupportsFeature. */
export const DriverFeature = { PROGRAM_KEEPALIVE: 10 } as const;
/** REMOTE_AUTH_* */
export const AuthType = { NONE: 0, SASL: 1, POLKIT: 2 } as const;

/** virDomainState */
export const DomainState = { NOSTATE: 0, RUNNING: 1, BLOCKED: 2, PAUSED: 3, SHUTDOWN: 4, SHUTOFF: 5, CRASHED: 6, PMSUSPENDED: 7 } as const;

/** virConnectListAllDomainsFlags */
export const ListDomainsFlag = { ACTIVE: 1, INACTIVE: 2, PERSISTENT: 4, TRANSIENT: 8, RUNNING: 16, PAUSED: 32, SHUTOFF: 64, OTHER: 128 } as const;

/** virDomainUndefineFlagsValues */
export const UndefineFlag = { MANAGED_SAVE: 1, SNAPSHOTS_METADATA: 2, NVRAM: 4, KEEP_NVRAM: 8, CHECKPOINTS_METADATA: 16 } as const;

/** 16 raw bytes → the 8-4-4-4-12 form libvirt prints. */
export function uuidString(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function uuidBytes(text: string): Buffer {
  const hex = text.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a UUID: ${text}`);
  return Buffer.from(hex, 'hex');
}
