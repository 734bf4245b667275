/**
 * TFTP packets (RFC 1350, options RFC 2347/2348/2349, windowsize RFC 7440): a pure codec. Every
 * input is hostile: `parse` either returns a well-formed packet or throws {@link PacketError}.
 */
export const OP = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

export const ERR = {
  notDefined: 0,
  fileNotFound: 1,
  accessViolation: 2,
  diskFull: 3,
  illegalOperation: 4,
  unknownTid: 5,
  fileExists: 6,
  noSuchUser: 7,
  optionRefused: 8,
} as const;

export type Packet =
  | { op: 'RRQ' | 'WRQ'; filename: string; mode: string; options: Map<string, string> }
  | { op: 'DATA'; block: number; data: Buffer }
  | { op: 'ACK'; block: number }
  | { op: 'ERROR'; code: number; message: string }
  | { op: 'OACK'; options: Map<string, string> };

export class PacketError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PacketError';
  }
}

/** Largest request we look at; a real RRQ is a file name and a few options. */
const MAX_REQUEST = 1024;

function strings(buf: Buffer, from: number): string[] {
  const out: string[] = [];
  let i = from;
  while (i < buf.length) {
    const end = buf.indexOf(0, i);
    if (end < 0) throw new PacketError('string not NUL-terminated');
    out.push(buf.toString('latin1', i, end));
    i = end + 1;
  }
  return out;
}

export function parse(buf: Buffer): Packet {
  if (buf.length < 4) throw new PacketError('packet shorter than 4 bytes');
  const op = buf.readUInt16BE(0);
  switch (op) {
    case OP.RRQ:
    case OP.WRQ: {
      if (buf.length > MAX_REQUEST) throw new PacketError('request too long');
      if (buf[buf.length - 1] !== 0) throw new PacketError('request not NUL-terminated');
      const parts = strings(buf, 2);
      const [filename, mode, ...rest] = parts;
      if (!filename) throw new PacketError('empty file name');
      if (mode === undefined) throw new PacketError('no transfer mode');
      const m = mode.toLowerCase();
      if (m !== 'octet' && m !== 'netascii') throw new PacketError(`unsupported mode ${m.slice(0, 20)}`);
      if (rest.length % 2 !== 0) throw new PacketError('option without a value');
      const options = new Map<string, string>();
      for (let i = 0; i < rest.length; i += 2) {
        const k = (rest[i] as string).toLowerCase();
        // A repeated option keeps its first value (RFC 2347 says nothing; tftpd-hpa does the same).
        if (!options.has(k)) options.set(k, rest[i + 1] as string);
      }
      return { op: op === OP.RRQ ? 'RRQ' : 'WRQ', filename, mode: m, options };
    }
    case OP.DATA:
      return { op: 'DATA', block: buf.readUInt16BE(2), data: buf.subarray(4) };
    case OP.ACK:
      if (buf.length !== 4) throw new PacketError('ACK must be 4 bytes');
      return { op: 'ACK', block: buf.readUInt16BE(2) };
    case OP.ERROR: {
      const end = buf.indexOf(0, 4);
      return { op: 'ERROR', code: buf.readUInt16BE(2), message: buf.toString('latin1', 4, end < 0 ? Math.min(buf.length, 516) : end) };
    }
    case OP.OACK: {
      const parts = strings(buf, 2);
      const options = new Map<string, string>();
      for (let i = 0; i + 1 < parts.length; i += 2) options.set((parts[i] as string).toLowerCase(), parts[i + 1] as string);
      return { op: 'OACK', options };
    }
    default:
      throw new PacketError(`unknown opcode ${op}`);
  }
}

export function data(block: number, payload: Buffer): Buffer {
  return dataInto(block, payload.length, (b, offset) => payload.copy(b, offset));
}

/** A DATA packet of up to `size` bytes that `fill` writes straight into it (returns how many). */
export function dataInto(block: number, size: number, fill: (packet: Buffer, offset: number) => number): Buffer {
  const b = Buffer.allocUnsafe(4 + size);
  b.writeUInt16BE(OP.DATA, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  const n = fill(b, 4);
  return n === size ? b : b.subarray(0, 4 + n);
}

export function ack(block: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt16BE(OP.ACK, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

export function error(code: number, message: string): Buffer {
  const msg = Buffer.from(message.slice(0, 200), 'latin1');
  const b = Buffer.alloc(5 + msg.length);
  b.writeUInt16BE(OP.ERROR, 0);
  b.writeUInt16BE(code, 2);
  msg.copy(b, 4);
  return b;
}

export function oack(options: Map<string, string>): Buffer {
  const parts: Buffer[] = [Buffer.from([0, OP.OACK])];
  for (const [k, v] of options) parts.push(Buffer.from(`${k}\0${v}\0`, 'latin1'));
  return Buffer.concat(parts);
}

export function request(op: 'RRQ' | 'WRQ', filename: string, options: Record<string, string> = {}, mode = 'octet'): Buffer {
  const opts = Object.entries(options).map(([k, v]) => `${k}\0${v}\0`).join('');
  return Buffer.concat([Buffer.from([0, op === 'RRQ' ? OP.RRQ : OP.WRQ]), Buffer.from(`${filename}\0${mode}\0${opts}`, 'latin1')]);
}
