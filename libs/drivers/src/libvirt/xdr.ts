/** XDR (RFC 4506) codecs: the subset libvirt's remote protocol uses, composable into struct layouts. */

export class XdrWriter {
  private buffer = Buffer.alloc(256);
  private offset = 0;

  private reserve(bytes: number): void {
    if (this.offset + bytes <= this.buffer.length) return;
    const next = Buffer.alloc(Math.max(this.buffer.length * 2, this.offset + bytes));
    this.buffer.copy(next, 0, 0, this.offset);
    this.buffer = next;
  }

  /** A fixed-size item written by `write` at the current offset. */
  private fixed(bytes: number, write: (buffer: Buffer, at: number) => unknown): void {
    this.reserve(bytes);
    write(this.buffer, this.offset);
    this.offset += bytes;
  }

  int(value: number): void {
    this.fixed(4, (buffer, at) => buffer.writeInt32BE(value, at));
  }

  uint(value: number): void {
    this.fixed(4, (buffer, at) => buffer.writeUInt32BE(value, at));
  }

  hyper(value: bigint): void {
    this.fixed(8, (buffer, at) => buffer.writeBigInt64BE(value, at));
  }

  uhyper(value: bigint): void {
    this.fixed(8, (buffer, at) => buffer.writeBigUInt64BE(value, at));
  }

  double(value: number): void {
    this.reserve(8);
    this.buffer.writeDoubleBE(value, this.offset);
    this.offset += 8;
  }

  /** Bytes padded to a multiple of 4 (no length: fixed opaque). */
  bytes(value: Uint8Array): void {
    const padded = (value.length + 3) & ~3;
    this.reserve(padded);
    this.buffer.set(value, this.offset);
    this.buffer.fill(0, this.offset + value.length, this.offset + padded);
    this.offset += padded;
  }

  done(): Buffer {
    return this.buffer.subarray(0, this.offset);
  }
}

export class XdrReader {
  private offset = 0;

  constructor(private readonly buffer: Buffer) {}

  private take(bytes: number): number {
    if (this.offset + bytes > this.buffer.length) throw new RangeError(`XDR: ${bytes} bytes wanted at ${this.offset}, ${this.buffer.length - this.offset} left`);
    const at = this.offset;
    this.offset += bytes;
    return at;
  }

  int(): number {
    return this.buffer.readInt32BE(this.take(4));
  }

  uint(): number {
    return this.buffer.readUInt32BE(this.take(4));
  }

  hyper(): bigint {
    return this.buffer.readBigInt64BE(this.take(8));
  }

  uhyper(): bigint {
    return this.buffer.readBigUInt64BE(this.take(8));
  }

  double(): number {
    return this.buffer.readDoubleBE(this.take(8));
  }

  bytes(length: number): Buffer {
    const at = this.take((length + 3) & ~3);
    return Buffer.from(this.buffer.subarray(at, at + length));
  }

  get remaining(): number {
    return this.buffer.length - this.offset;
  }
}

export interface Codec<T> {
  encode(writer: XdrWriter, value: T): void;
  decode(reader: XdrReader): T;
}
export type CodecType<C> = C extends Codec<infer T> ? T : never;

export const xdrVoid: Codec<void> = { encode: () => undefined, decode: () => undefined };
export const xdrInt: Codec<number> = { encode: (w, v) => w.int(v), decode: (r) => r.int() };
export const xdrUint: Codec<number> = { encode: (w, v) => w.uint(v), decode: (r) => r.uint() };
export const xdrHyper: Codec<bigint> = { encode: (w, v) => w.hyper(v), decode: (r) => r.hyper() };
export const xdrUhyper: Codec<bigint> = { encode: (w, v) => w.uhyper(v), decode: (r) => r.uhyper() };
export const xdrDouble: Codec<number> = { encode: (w, v) => w.double(v), decode: (r) => r.double() };
export const xdrBool: Codec<boolean> = {
  encode: (w, v) => w.int(v ? 1 : 0),
  decode: (r) => {
    const value = r.int();
    if (value !== 0 && value !== 1) throw new RangeError(`XDR: bool is ${value}`);
    return value === 1;
  },
};

/** Variable-length opaque with a maximum (`opaque<max>`). */
export function xdrVarOpaque(max: number): Codec<Buffer> {
  return {
    encode: (w, v) => {
      if (v.length > max) throw new RangeError(`XDR: opaque of ${v.length} bytes exceeds ${max}`);
      w.uint(v.length);
      w.bytes(v);
    },
    decode: (r) => {
      const length = r.uint();
      if (length > max) throw new RangeError(`XDR: opaque of ${length} bytes exceeds ${max}`);
      return r.bytes(length);
    },
  };
}

export function xdrFixedOpaque(length: number): Codec<Buffer> {
  return {
    encode: (w, v) => {
      if (v.length !== length) throw new RangeError(`XDR: fixed opaque wants ${length} bytes, got ${v.length}`);
      w.bytes(v);
    },
    decode: (r) => r.bytes(length),
  };
}

/** `string<max>` in UTF-8. */
export function xdrString(max: number): Codec<string> {
  const opaque = xdrVarOpaque(max);
  return {
    encode: (w, v) => opaque.encode(w, Buffer.from(v, 'utf8')),
    decode: (r) => opaque.decode(r).toString('utf8'),
  };
}

/** `T *` (optional-data): a bool, then the value when present. */
export function xdrOptional<T>(codec: Codec<T>): Codec<T | null> {
  return {
    encode: (w, v) => {
      w.int(v === null ? 0 : 1);
      if (v !== null) codec.encode(w, v);
    },
    decode: (r) => (xdrBool.decode(r) ? codec.decode(r) : null),
  };
}

/** `T<max>`: a count, then the elements. */
export function xdrArray<T>(codec: Codec<T>, max: number): Codec<T[]> {
  return {
    encode: (w, v) => {
      if (v.length > max) throw new RangeError(`XDR: array of ${v.length} exceeds ${max}`);
      w.uint(v.length);
      for (const item of v) codec.encode(w, item);
    },
    decode: (r) => {
      const length = r.uint();
      if (length > max) throw new RangeError(`XDR: array of ${length} exceeds ${max}`);
      // each element takes at least 4 bytes: a lying count fails before allocating
      if (length * 4 > r.remaining) throw new RangeError(`XDR: array of ${length} longer than the ${r.remaining} bytes left`);
      return Array.from({ length }, () => codec.decode(r));
    },
  };
}

/** A struct: fields encoded in the order they are listed. */
export function xdrStruct<F extends Record<string, Codec<unknown>>>(fields: F): Codec<{ [K in keyof F]: CodecType<F[K]> }> {
  const entries = Object.entries(fields);
  return {
    encode: (w, v) => {
      for (const [key, codec] of entries) codec.encode(w, (v as Record<string, unknown>)[key]);
    },
    decode: (r) => Object.fromEntries(entries.map(([key, codec]) => [key, codec.decode(r)])) as { [K in keyof F]: CodecType<F[K]> },
  };
}

export function encodeXdr<T>(codec: Codec<T>, value: T): Buffer {
  const writer = new XdrWriter();
  codec.encode(writer, value);
  return writer.done();
}

/** Decodes the whole buffer: trailing bytes mean the layout is wrong. */
export function decodeXdr<T>(codec: Codec<T>, buffer: Buffer): T {
  const reader = new XdrReader(buffer);
  const value = codec.decode(reader);
  if (reader.remaining !== 0) throw new RangeError(`XDR: ${reader.remaining} bytes left after decoding`);
  return value;
}

/** A discriminated union on an int (`union switch (int type)`); a discriminant without an arm is a decode error. */
export function xdrUnion<C extends Record<number, Codec<unknown>>>(arms: C): Codec<{ [K in keyof C]: { type: K; value: CodecType<C[K]> } }[keyof C]> {
  return {
    encode: (w, v) => {
      const arm = arms[v.type as number];
      if (!arm) throw new RangeError(`XDR: union has no arm ${String(v.type)}`);
      w.int(v.type as number);
      arm.encode(w, v.value);
    },
    decode: (r) => {
      const type = r.int();
      const arm = arms[type];
      if (!arm) throw new RangeError(`XDR: union has no arm ${type}`);
      return { type, value: arm.decode(r) } as never;
    },
  };
}
