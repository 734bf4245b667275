import { isIPv4, isIPv6 } from 'node:net';

/** An IPv4 or IPv6 network in canonical form. */
export interface Cidr {
  family: 4 | 6;
  /** Network address as a bigint (host bits cleared). */
  network: bigint;
  prefix: number;
  /** Canonical text, e.g. `10.1.0.0/16` or `2001:db8::/32`. */
  text: string;
}

function ipv4ToBig(ip: string): bigint {
  return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function ipv6ToBig(ip: string): bigint {
  let s = ip;
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) becomes two hex groups.
  const v4 = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4?.[1]) {
    const n = ipv4ToBig(v4[1]);
    s = s.slice(0, -v4[1].length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function bigToIpv4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => ((n >> s) & 0xffn).toString()).join('.');
}

function bigToIpv6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((n >> BigInt((7 - i) * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Parses `a.b.c.d/n` or `x::/n`; a bare address is a host network. `undefined` when invalid. */
export function parseCidr(input: string): Cidr | undefined {
  const m = input.trim().match(/^([^/\s]+)(?:\/(\d{1,3}))?$/);
  if (!m?.[1]) return undefined;
  const addr = m[1];
  const family = isIPv4(addr) ? 4 : isIPv6(addr) && !addr.includes('%') ? 6 : 0;
  if (family === 0) return undefined;
  const bits = family === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? bits : Number(m[2]);
  if (prefix > bits || (m[2] !== undefined && m[2].length > 1 && m[2].startsWith('0'))) return undefined;
  const value = family === 4 ? ipv4ToBig(addr) : ipv6ToBig(addr);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  const network = value & mask;
  const text = `${family === 4 ? bigToIpv4(network) : bigToIpv6(network)}/${prefix}`;
  return { family, network, prefix, text };
}

/** Parses a single address (IPv4-mapped IPv6 is treated as IPv4). */
export function parseIp(input: string): { family: 4 | 6; value: bigint } | undefined {
  let ip = input.trim();
  if (ip.toLowerCase().startsWith('::ffff:') && isIPv4(ip.slice(7))) ip = ip.slice(7);
  if (isIPv4(ip)) return { family: 4, value: ipv4ToBig(ip) };
  if (isIPv6(ip) && !ip.includes('%')) return { family: 6, value: ipv6ToBig(ip) };
  return undefined;
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  const a = parseIp(ip);
  if (!a || a.family !== cidr.family) return false;
  const bits = cidr.family === 4 ? 32 : 128;
  const shift = BigInt(bits - cidr.prefix);
  return a.value >> shift === cidr.network >> shift;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const bits = a.family === 4 ? 32 : 128;
  const shift = BigInt(bits - Math.min(a.prefix, b.prefix));
  return a.network >> shift === b.network >> shift;
}
