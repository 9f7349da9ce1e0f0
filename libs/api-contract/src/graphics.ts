import { createCipheriv } from 'node:crypto';
import Type, { type Static } from 'typebox';
import { DomainId, Uuid } from './names.js';
import { HttpTags, PermissionClass, type OperationSpec } from './operation-spec.js';
import { Access } from './subjects.js';

/** VNC authentication keys DES with 8 bytes: a longer password would be cut silently, so it is refused. */
export const VNC_PASSWORD_MAX = 8;

/** RFB VNC authentication (security type 2): the 16-byte challenge DES-encrypted with the password, each key byte bit-reversed (RFC 6143 7.2.2). */
export function vncAuthResponse(password: string, challenge: Buffer): Buffer {
  const key = Buffer.alloc(8);
  Buffer.from(password, 'latin1').copy(key, 0, 0, 8);
  for (let i = 0; i < 8; i++) key[i] = Number.parseInt(key[i]!.toString(2).padStart(8, '0').split('').reverse().join(''), 2);
  // single DES as triple DES with one key thrice: OpenSSL 3's default provider has no plain des-ecb
  const cipher = createCipheriv('des-ede3-ecb', Buffer.concat([key, key, key]), null).setAutoPadding(false);
  return Buffer.concat([cipher.update(challenge), cipher.final()]);
}

/** A graphical console (libvirt's <graphics> + <video>): QEMU's VNC server on a unix socket only the agent reaches. */
export const DomainGraphics = Type.Object(
  {
    type: Type.Enum(['vnc', 'none'], { description: 'vnc: a VNC server reached through the bus (never a TCP port)' }),
    video: Type.Optional(Type.Enum(['std', 'virtio'], { description: 'Video card: std VGA (when absent) or virtio-vga' })),
    password: Type.Optional(
      Type.String({
        maxLength: VNC_PASSWORD_MAX,
        pattern: '^[\\x20-\\x7e]*$',
        writeOnly: true,
        description:
          "VNC password (libvirt's passwd; VNC authentication uses 8 characters at most). Never shown by a read. On an update: absent keeps the one set, empty removes it; a running domain started with one takes a new one at once",
      }),
    ),
    passwordSet: Type.Optional(Type.Boolean({ readOnly: true, description: 'In a read: a VNC password is set (the password itself is never returned); ignored in a write' })),
  },
  { additionalProperties: false, title: 'DomainGraphics' },
);
export type DomainGraphics = Static<typeof DomainGraphics>;

const Session = Type.String({ minLength: 1, maxLength: 64 });
const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', description: 'base64 bytes' });

export const GraphicsAttachRequest = Type.Object(
  {
    id: DomainId,
    exclusive: Type.Optional(Type.Boolean({ description: 'Be the only viewer: refused while others watch unless force is set, which closes them' })),
    force: Type.Optional(Type.Boolean({ description: 'Close the other viewers (with exclusive) or the exclusive viewer' })),
  },
  { additionalProperties: false },
);
export const GraphicsAttachment = Type.Object(
  {
    session: Session,
    subject: Type.String({ description: 'Core NATS subject carrying the VNC server bytes of this session (an End header closes it)' }),
    windowBytes: Type.Integer({ minimum: 1, description: 'Bytes the agent sends beyond the last acknowledged count' }),
  },
  { additionalProperties: false, title: 'GraphicsAttachment' },
);
export const GraphicsWriteRequest = Type.Object(
  {
    id: DomainId,
    session: Session,
    data: Type.Optional(Type.String({ ...Base64, maxLength: 87_384, description: 'Viewer bytes for the VNC server (64 KiB at most)' })),
    ack: Type.Optional(Type.Integer({ minimum: 0, description: 'Server bytes the viewer has taken so far (the first write, even with 0, starts the flow)' })),
  },
  { additionalProperties: false },
);
export const GraphicsDetachRequest = Type.Object({ id: DomainId, session: Session }, { additionalProperties: false });

/** PNG of the screen; bounded by the bus reply (a 1280×1024 desktop compresses far below it). */
export const Screenshot = Type.Object(
  { format: Type.Literal('png'), data: Type.String({ ...Base64, maxLength: 1_000_000 }) },
  { additionalProperties: false, title: 'Screenshot' },
);

/** QEMU's QKeyCode names (lower case: `ctrl`, `alt`, `delete`, `a`, `f1`, `ret`…). */
export const KeyName = Type.String({ pattern: '^[a-z0-9_]{1,24}$', description: "A QEMU QKeyCode name, e.g. ctrl, alt, delete, a, ret" });
export const SendKeyBody = Type.Object(
  {
    keys: Type.Array(KeyName, { minItems: 1, maxItems: 16, description: 'Pressed together, released in reverse order (virsh send-key)' }),
    holdTime: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'Milliseconds to hold the keys (default 100)' })),
  },
  { additionalProperties: false, title: 'SendKeyBody' },
);
export const SendKeyRequest = Type.Object({ id: DomainId, ...SendKeyBody.properties }, { additionalProperties: false });

export const GraphicsEventType = Type.Enum(['CONNECTED', 'DISCONNECTED'], { description: "A viewer came or went (libvirt's GRAPHICS event phases)" });
/** A viewer connected or disconnected (core NATS, best effort, not numbered). */
export const GraphicsEvent = Type.Object(
  {
    kind: Type.Literal('graphics'),
    node: Type.String(),
    timestamp: Type.String({ format: 'date-time' }),
    uuid: Uuid,
    name: Type.String(),
    type: GraphicsEventType,
    session: Session,
    exclusive: Type.Boolean(),
    event: Type.Optional(Type.Literal('GRAPHICS', { description: "libvirt's event id name (DomainEventIds)" })),
    eventId: Type.Optional(Type.Literal(5, { description: "libvirt's virDomainEventID number of GRAPHICS" })),
  },
  { additionalProperties: false, title: 'GraphicsEvent' },
);
export type GraphicsEvent = Static<typeof GraphicsEvent>;

const GraphicsErrors = ['NO_DOMAIN', 'OPERATION_INVALID', 'OPERATION_UNSUPPORTED'] as const;

export const GraphicsOperations = {
  'domain.graphics.attach': {
    access: Access.ReadWrite,
    request: GraphicsAttachRequest,
    response: GraphicsAttachment,
    summary: "Open a viewer session on the domain's VNC server",
    permission: PermissionClass.Console,
    errors: GraphicsErrors,
    // by hand: a WebSocket relays the session (like the serial console)
    http: {
      method: 'GET',
      path: '/domains/:id/vnc',
      operationId: 'openVnc',
      tag: HttpTags.Console,
      served: 'hand',
      description: 'Upgrade to a WebSocket (subprotocol `binary`, as noVNC expects) carrying the RFB byte stream both ways.',
    },
  },
  'domain.graphics.write': {
    access: Access.ReadWrite,
    request: GraphicsWriteRequest,
    response: Type.Object({}, { additionalProperties: false }),
    summary: 'Send viewer bytes to the VNC server and acknowledge server bytes',
    permission: PermissionClass.Console,
    errors: GraphicsErrors,
  },
  'domain.graphics.detach': {
    access: Access.ReadWrite,
    request: GraphicsDetachRequest,
    response: Type.Object({}, { additionalProperties: false }),
    summary: 'Close a viewer session',
    permission: PermissionClass.Console,
    errors: GraphicsErrors,
  },
  // the screen shows what a console shows
  'domain.screenshot': {
    access: Access.ReadOnly,
    request: Type.Object({ id: DomainId }, { additionalProperties: false }),
    response: Screenshot,
    summary: "A PNG of the domain's screen (QMP screendump)",
    permission: PermissionClass.Console,
    errors: GraphicsErrors,
    http: { method: 'GET', path: '/domains/:id/screenshot', operationId: 'getDomainScreenshot', tag: HttpTags.Console, served: 'hand', description: 'Answers image/png.' },
  },
  'domain.sendKey': {
    access: Access.ReadWrite,
    request: SendKeyRequest,
    response: Type.Object({}, { additionalProperties: false }),
    summary: 'Press keys on the domain’s keyboard without a viewer (virsh send-key)',
    permission: PermissionClass.Console,
    errors: GraphicsErrors,
    http: { method: 'POST', path: '/domains/:id/send-key', operationId: 'sendDomainKeys', tag: HttpTags.Console, body: true },
  },
} as const satisfies Record<string, OperationSpec>;
