/**
 * DHCPv4 packet codec (RFC 2131 header, RFC 2132 options, RFC 3396 long options, option overload).
 * Pure: bytes in, a packet out, or a `DhcpParseError` saying what is wrong. Nothing from the wire
 * is trusted: every length is checked against the buffer before it is read.
 */

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const MAGIC_COOKIE = 0x63825363;
/** Fixed BOOTP header plus the magic cookie. */
export const HEADER_BYTES = 240;
/** Replies are padded to the classic BOOTP minimum; some clients drop shorter ones. */
export const MIN_REPLY_BYTES = 300;
/** What every client must accept (RFC 2131 §2) unless it sends option 57. */
export const DEFAULT_MAX_MESSAGE = 576;
/** IP (20) and UDP (8) headers counted in option 57's size. */
export const IP_UDP_OVERHEAD = 28;

export const MessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];
export const MESSAGE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(MessageType).map(([k, v]) => [v, k]));

export const Opt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  BROADCAST: 28,
  NTP: 42,
  VENDOR_SPECIFIC: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER: 66,
  POLYCOM_BOOT_SERVER: 160,
  END: 255,
} as const;

export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** Client hardware address, `hlen` bytes. */
  chaddr: Buffer;
  sname: string;
  file: string;
  /** Option code → value; repeated codes are concatenated (RFC 3396). Insertion order is kept. */
  options: Map<number, Buffer>;
}

export class DhcpParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DhcpParseError';
  }
}

export const BROADCAST_FLAG = 0x8000;

const ipAt = (b: Buffer, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;

/** A NUL-terminated ASCII field; bytes after the first NUL are ignored. */
function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('latin1');
}

/** Reads options from `buf` into `into`; returns whether END was seen. */
function readOptions(buf: Buffer, into: Map<number, Buffer>, where: string): boolean {
  let i = 0;
  while (i < buf.length) {
    const code = buf[i] as number;
    if (code === Opt.PAD) {
      i += 1;
      continue;
    }
    if (code === Opt.END) return true;
    if (i + 1 >= buf.length) throw new DhcpParseError(`option ${code} in the ${where} has no length byte`);
    const len = buf[i + 1] as number;
    if (i + 2 + len > buf.length) throw new DhcpParseError(`option ${code} in the ${where} runs past the end (length ${len})`);
    const value = buf.subarray(i + 2, i + 2 + len);
    const prev = into.get(code);
    into.set(code, prev ? Buffer.concat([prev, value]) : Buffer.from(value));
    i += 2 + len;
  }
  return false;
}

/** Parses one DHCP message. Throws `DhcpParseError` for anything that is not one. */
export function parsePacket(buf: Buffer): DhcpPacket {
  if (buf.length < HEADER_BYTES) throw new DhcpParseError(`too short for a DHCP message: ${buf.length} bytes`);
  const op = buf[0] as number;
  if (op !== BOOTREQUEST && op !== BOOTREPLY) throw new DhcpParseError(`unknown op ${op}`);
  const hlen = buf[2] as number;
  if (hlen > 16) throw new DhcpParseError(`hardware address length ${hlen} exceeds 16`);
  if (buf.readUInt32BE(236) !== MAGIC_COOKIE) throw new DhcpParseError('no DHCP magic cookie');
  const options = new Map<number, Buffer>();
  const ended = readOptions(buf.subarray(HEADER_BYTES), options, 'options field');
  if (!ended) throw new DhcpParseError('options do not end with the END option');
  const overload = options.get(Opt.OVERLOAD);
  let sname = cString(buf.subarray(44, 108));
  let file = cString(buf.subarray(108, 236));
  if (overload) {
    const v = overload.length === 1 ? (overload[0] as number) : 0;
    if (v < 1 || v > 3) throw new DhcpParseError(`option overload must be 1, 2 or 3`);
    // RFC 2131 §4.1: the file field is read before sname.
    if (v & 1) {
      readOptions(buf.subarray(108, 236), options, 'file field');
      file = '';
    }
    if (v & 2) {
      readOptions(buf.subarray(44, 108), options, 'sname field');
      sname = '';
    }
  }
  return {
    op,
    htype: buf[1] as number,
    hlen,
    hops: buf[3] as number,
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: ipAt(buf, 12),
    yiaddr: ipAt(buf, 16),
    siaddr: ipAt(buf, 20),
    giaddr: ipAt(buf, 24),
    chaddr: Buffer.from(buf.subarray(28, 28 + hlen)),
    sname,
    file,
    options,
  };
}

function writeIp(b: Buffer, o: number, ip: string): void {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  parts.forEach((p, i) => (b[o + i] = p));
}

/**
 * Encodes a message. Options longer than 255 bytes are split (RFC 3396). `maxBytes` bounds the
 * whole DHCP payload: options that do not fit are left out, last first, never the message type,
 * server identifier or lease times (they are written first by the caller's order).
 */
export function encodePacket(p: DhcpPacket, maxBytes = DEFAULT_MAX_MESSAGE - IP_UDP_OVERHEAD): Buffer {
  const chunks: Buffer[] = [];
  let size = HEADER_BYTES + 1; // END
  for (const [code, value] of p.options) {
    if (code === Opt.PAD || code === Opt.END) continue;
    const parts: Buffer[] = [];
    for (let i = 0; i === 0 || i < value.length; i += 255) {
      const part = value.subarray(i, i + 255);
      parts.push(Buffer.concat([Buffer.from([code, part.length]), part]));
    }
    const bytes = Buffer.concat(parts);
    if (size + bytes.length > maxBytes) continue;
    chunks.push(bytes);
    size += bytes.length;
  }
  const total = Math.max(MIN_REPLY_BYTES, size);
  const b = Buffer.alloc(total);
  b[0] = p.op;
  b[1] = p.htype;
  b[2] = Math.min(p.hlen, 16);
  b[3] = p.hops;
  b.writeUInt32BE(p.xid >>> 0, 4);
  b.writeUInt16BE(p.secs & 0xffff, 8);
  b.writeUInt16BE(p.flags & 0xffff, 10);
  writeIp(b, 12, p.ciaddr);
  writeIp(b, 16, p.yiaddr);
  writeIp(b, 20, p.siaddr);
  writeIp(b, 24, p.giaddr);
  p.chaddr.copy(b, 28, 0, Math.min(16, p.chaddr.length));
  b.write(p.sname.slice(0, 63), 44, 'latin1');
  b.write(p.file.slice(0, 127), 108, 'latin1');
  b.writeUInt32BE(MAGIC_COOKIE, 236);
  let o = HEADER_BYTES;
  for (const c of chunks) {
    c.copy(b, o);
    o += c.length;
  }
  b[o] = Opt.END;
  return b;
}

// ---- option values ----------------------------------------------------------------------------

export const ipToInt = (ip: string): number => ip.split('.').reduce((acc, p) => ((acc << 8) | Number(p)) >>> 0, 0);
export const intToIp = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');

export const optIps = (ips: readonly string[]): Buffer => {
  const b = Buffer.alloc(4 * ips.length);
  ips.forEach((ip, i) => writeIp(b, 4 * i, ip));
  return b;
};
export const optU32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
export const optText = (s: string): Buffer => Buffer.from(s, 'latin1');

/** An option holding exactly one IPv4 address, or `undefined`. */
export function readIpOption(p: DhcpPacket, code: number): string | undefined {
  const v = p.options.get(code);
  return v?.length === 4 ? ipAt(v, 0) : undefined;
}

/** The message type (option 53) when present and valid. */
export function messageType(p: DhcpPacket): MessageTypeCode | undefined {
  const v = p.options.get(Opt.MESSAGE_TYPE);
  if (v?.length !== 1) return undefined;
  const t = v[0] as number;
  return t >= 1 && t <= 8 ? (t as MessageTypeCode) : undefined;
}

/** `aa:bb:cc:dd:ee:ff` for Ethernet (htype 1, hlen 6), else `undefined`. */
export function ethernetMac(p: DhcpPacket): string | undefined {
  if (p.htype !== 1 || p.hlen !== 6) return undefined;
  return [...p.chaddr.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Printable text of an option (host name, vendor class), control characters dropped. */
export function readTextOption(p: DhcpPacket, code: number, max = 255): string | undefined {
  const v = p.options.get(code);
  if (!v) return undefined;
  return cString(v).replace(/[^\x20-\x7e]/g, '').slice(0, max);
}
