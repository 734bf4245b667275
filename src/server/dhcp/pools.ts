import { isIPv4 } from 'node:net';
import { parseCidr } from '../../domain/net.ts';
import type { Site, SiteDhcp } from '../../domain/types.ts';
import type { Pool } from './leases.ts';
import { ipToInt, Opt, optIps, optText, optU32 } from './packet.ts';

/**
 * From a site's settings to the pools the DHCP server hands addresses from, and the options each
 * pool sends (1, 3, 6, 15, 28, 42, 66, 160 and the site's extra ones).
 */

export interface ServedPool extends Pool {
  /** Ready-encoded options for this pool, in send order. */
  options: Map<number, Buffer>;
}

/** Most hosts a pool takes from a subnet when the site gives no ranges. */
const MAX_DEFAULT_HOSTS = 65534;

/** Encodes one of a site's extra options (validated on input by `dhcpOptionProblem`). */
export function encodeExtraOption(o: SiteDhcp['options'][number]): Buffer {
  switch (o.type) {
    case 'text':
      return optText(o.value);
    case 'ip':
      return optIps([o.value]);
    case 'ips':
      return optIps(o.value.split(',').map((v) => v.trim()));
    case 'uint8':
      return Buffer.from([Number(o.value)]);
    case 'uint16': {
      const b = Buffer.alloc(2);
      b.writeUInt16BE(Number(o.value));
      return b;
    }
    case 'uint32':
      return optU32(Number(o.value));
    case 'bool':
      return Buffer.from([o.value === 'true' || o.value === '1' ? 1 : 0]);
    case 'hex':
      return Buffer.from(o.value.replace(/[:\s]/g, ''), 'hex');
  }
}

/**
 * The pools of one site: one per IPv4 subnet that has addresses to hand out. `url` is the
 * provisioning URL for options 66 and 160; `serverIp` is kept out of every pool.
 */
export function sitePools(site: Site, url: string, serverIp: string | undefined): ServedPool[] {
  const d = site.dhcp;
  const pools: ServedPool[] = [];
  for (const text of site.subnets) {
    const c = parseCidr(text);
    if (c?.family !== 4 || c.prefix > 30) continue;
    const network = Number(c.network);
    const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0;
    const broadcast = (network | (~mask >>> 0)) >>> 0;
    const inNet = (ip: string) => isIPv4(ip) && ((ipToInt(ip) & mask) >>> 0) === network;
    const ranges: Array<[number, number]> = d.ranges.filter((r) => inNet(r.start) && inNet(r.end)).map((r) => [ipToInt(r.start), ipToInt(r.end)]);
    if (d.ranges.length === 0) ranges.push([network + 1, Math.min(broadcast - 1, network + MAX_DEFAULT_HOSTS)]);
    const reservations = new Map(d.reservations.filter((r) => inNet(r.ip)).map((r) => [r.mac, ipToInt(r.ip)] as const));
    const routers = d.routers.filter(inNet);
    const excluded = new Set<number>([network, broadcast, ...reservations.values()]);
    for (const ip of [...d.routers, ...d.dnsServers, ...d.ntpServers, ...(serverIp ? [serverIp] : [])]) if (inNet(ip)) excluded.add(ipToInt(ip));
    // Reservations are excluded from the dynamic ranges; their owners still get them.
    if (ranges.length === 0 && reservations.size === 0) continue;

    const options = new Map<number, Buffer>();
    options.set(Opt.SUBNET_MASK, optU32(mask));
    const routerList = routers.length ? routers : d.routers;
    if (routerList.length) options.set(Opt.ROUTER, optIps(routerList));
    if (d.dnsServers.length) options.set(Opt.DNS, optIps(d.dnsServers));
    if (d.domainName) options.set(Opt.DOMAIN_NAME, optText(d.domainName));
    options.set(Opt.BROADCAST, optU32(broadcast));
    const ntp = d.ntpServers.length ? d.ntpServers : site.ntp.server && isIPv4(site.ntp.server) ? [site.ntp.server] : [];
    if (ntp.length) options.set(Opt.NTP, optIps(ntp));
    options.set(Opt.TFTP_SERVER, optText(url));
    options.set(Opt.POLYCOM_BOOT_SERVER, optText(url));
    for (const o of d.options) options.set(o.code, encodeExtraOption(o));

    pools.push({
      tenantId: site.tenantId,
      siteId: site.id,
      siteName: site.name,
      cidr: c.text,
      network,
      mask,
      broadcast,
      ranges,
      reservations,
      excluded,
      leaseSeconds: d.leaseSeconds,
      options,
    });
  }
  return pools;
}

/** The pool whose subnet holds `ip` (longest prefix first), if any. */
export function poolFor(pools: readonly ServedPool[], ip: number): ServedPool | undefined {
  let best: ServedPool | undefined;
  for (const p of pools) if (((ip & p.mask) >>> 0) === p.network && (!best || p.mask >>> 0 > best.mask >>> 0)) best = p;
  return best;
}
