import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import Type, { type Static } from 'typebox';
import { NodeName, VirtError, compileValidator, parseJsonOr } from '@virtbus/api-contract';
import { Roles, type Role } from './roles.js';

/** Bearer tokens look like `vbt_<id>_<secret>`: the id finds the record, only sha256(secret) is stored. */
export const TOKEN_PREFIX = 'vbt';
const TOKEN_PATTERN = /^vbt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export const TokenRecord = Type.Object(
  {
    id: Type.String({ pattern: '^[0-9a-f]{16}$' }),
    name: Type.String({ minLength: 1, maxLength: 128, description: 'Who holds the token (shown in the audit log)' }),
    role: Type.Enum(Roles as Role[]),
    nodes: Type.Optional(Type.Array(NodeName, { description: 'Nodes the token may reach; all nodes when absent' })),
    hash: Type.String({ pattern: '^sha256:[0-9a-f]{64}$', description: 'sha256 of the 32-byte random secret' }),
    createdAt: Type.String({ format: 'date-time' }),
    expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);
export type TokenRecord = Static<typeof TokenRecord>;

export const TokenFile = Type.Object({ version: Type.Literal(1), tokens: Type.Array(TokenRecord) }, { additionalProperties: false });
export type TokenFile = Static<typeof TokenFile>;
const tokenFileValidator = compileValidator(TokenFile);

export interface NewToken {
  /** The bearer token: shown once, never stored. */
  token: string;
  record: TokenRecord;
}

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

export interface CreateTokenOptions {
  name: string;
  role: Role;
  nodes?: string[];
  /** Lifetime in seconds; no expiry when absent. */
  ttlSeconds?: number;
  now?: Date;
}

/** A 32-byte random secret needs no slow hash: sha256 of it cannot be brute-forced. */
export function createToken(options: CreateTokenOptions): NewToken {
  const now = options.now ?? new Date();
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const record: TokenRecord = {
    id,
    name: options.name,
    role: options.role,
    ...(options.nodes && options.nodes.length ? { nodes: [...options.nodes] } : {}),
    hash: `sha256:${hashSecret(secret).toString('hex')}`,
    createdAt: now.toISOString(),
    ...(options.ttlSeconds !== undefined ? { expiresAt: new Date(now.getTime() + options.ttlSeconds * 1000).toISOString() } : {}),
  };
  compileValidator(TokenRecord).parse(record);
  return { token: `${TOKEN_PREFIX}_${id}_${secret}`, record };
}

export type TokenCheck = { ok: true; record: TokenRecord } | { ok: false; reason: 'malformed' | 'unknown' | 'expired' };

const DUMMY_HASH = hashSecret('virtbus-dummy');

/** Finds the token's record and compares hashes in constant time; an expired token is refused. */
export function verifyToken(tokens: readonly TokenRecord[], token: string, now: Date = new Date()): TokenCheck {
  const match = TOKEN_PATTERN.exec(token);
  if (!match) return { ok: false, reason: 'malformed' };
  const [, id, secret] = match as unknown as [string, string, string];
  const record = tokens.find((t) => t.id === id);
  const presented = hashSecret(secret);
  const expected = record ? Buffer.from(record.hash.slice('sha256:'.length), 'hex') : DUMMY_HASH;
  const equal = timingSafeEqual(presented, expected);
  if (!record || !equal) return { ok: false, reason: 'unknown' };
  if (record.expiresAt && Date.parse(record.expiresAt) <= now.getTime()) return { ok: false, reason: 'expired' };
  return { ok: true, record };
}

export function parseTokenFile(text: string): TokenFile {
  const json = parseJsonOr(text, 'INVALID_ARG', 'token file is not valid JSON');
  const file = tokenFileValidator.parse(json);
  const ids = new Set<string>();
  for (const token of file.tokens) {
    if (ids.has(token.id)) throw new VirtError('INVALID_ARG', `token file has the id ${token.id} twice`);
    ids.add(token.id);
  }
  return file;
}

export function emptyTokenFile(): TokenFile {
  return { version: 1, tokens: [] };
}

export async function loadTokenFile(path: string): Promise<TokenFile> {
  return parseTokenFile(await readFile(path, 'utf8'));
}

export function serializeTokenFile(file: TokenFile): string {
  return `${JSON.stringify(tokenFileValidator.parse(file), null, 2)}\n`;
}

/** `90d`, `12h`, `30m`, `45s` or plain seconds → seconds. */
export function parseTtl(text: string): number {
  const match = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!match) throw new VirtError('INVALID_ARG', `invalid duration ${JSON.stringify(text)}: use e.g. 90d, 12h, 30m or seconds`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(match[1]) * unit;
  if (seconds <= 0) throw new VirtError('INVALID_ARG', 'a token lifetime must be positive');
  return seconds;
}
