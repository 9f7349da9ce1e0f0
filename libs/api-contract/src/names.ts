import Type from 'typebox';

/** A name: its pattern, 1 to maxLength characters. */
function nameSchema(pattern: string, maxLength: number, description: string) {
  return Type.String({ pattern, minLength: 1, maxLength, description });
}

/** A count or size: a non-negative integer. */
export const Count = Type.Integer({ minimum: 0 });

/** Node names become NATS subject tokens: no dots, wildcards, spaces or `>`. */
export const NODE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$';
export const NodeName = nameSchema(NODE_NAME_PATTERN, 63, 'Node name: letters, digits, `_` and `-` (a NATS subject token)');

/** Object names are used in file names and QEMU options: no `/`, `..`, `,`, `=`, spaces or control characters. */
export const OBJECT_NAME_PATTERN = '^(?!.*\\.\\.)[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$';
export const ObjectName = nameSchema(OBJECT_NAME_PATTERN, 64, 'Name: letters, digits, `_ . + -`, starting with a letter or digit, no `..`');

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
export const Uuid = Type.String({ pattern: UUID_PATTERN, description: 'RFC 4122 UUID' });

/** A domain is addressed by uuid or by name. */
export const DomainId = Type.Union([Uuid, ObjectName], { description: 'Domain uuid or name' });

/** Absolute host paths with no `..` segment, no control characters and none of QEMU's option separators. */
export const HOST_PATH_PATTERN = '^/(?!.*(?:^|/)\\.\\.(?:/|$))[^\\x00-\\x1f\\x7f,=]*$';
export const HostPath = Type.String({
  pattern: HOST_PATH_PATTERN,
  maxLength: 4096,
  description: 'Absolute path on the node (no `..`, `,`, `=` or control characters)',
});

export function isNodeName(value: string): boolean {
  return new RegExp(NODE_NAME_PATTERN).test(value);
}

export function isObjectName(value: string): boolean {
  return value.length <= 64 && new RegExp(OBJECT_NAME_PATTERN).test(value);
}

export function isUuid(value: string): boolean {
  return new RegExp(UUID_PATTERN).test(value);
}
