import { createSocket, type RemoteInfo } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Clock } from '../../clock.ts';
import type { Inventory } from '../../domain/inventory.ts';
import type { Logger } from '../../logger.ts';
import type { Store } from '../../store/store.ts';
import { LeaseMachine, type Decision } from './leases.ts';
import * as P from './packet.ts';
import { poolFor, sitePools, type ServedPool } from './pools.ts';

/**
 * The built-in DHCPv4 server (off by default) for networks where the appliance owns the voice
 * segment. Binds `0.0.0.0:67` (a socket bound to an interface address receives no broadcasts);
 * a request's pool is the site subnet holding its relay's giaddr, else the one holding this
 * server's own address on the served segment. Replies go to the relay (port 67), to the client's
 * ciaddr, or to the pool subnet's broadcast address: Node cannot send to 255.255.255.255 through
 * a chosen interface, and the directed broadcast leaves by the right one.
 */
export interface DhcpOptions {
  host: string;
  port: number;
  /** This server's address on the served segment: server identifier (option 54) and local pool. */
  serverAddress: string;
  offerSeconds?: number;
  declineSeconds?: number;
  /** Where replies go; tests move them off the privileged ports. @default {client: 68, relay: 67} */
  replyPorts?: { client: number; relay: number };
}

export interface DhcpDeps {
  store: Store;
  inventory: Inventory;
  clock: Clock;
  logger: Logger;
  /** The provisioning URL for a tenant's options 66 and 160. */
  provisioningUrl(tenantId: string, withCredentials: boolean): Promise<string>;
}

export interface DhcpHandle {
  readonly address: AddressInfo;
  /** Messages handled so far, by outcome (for tests and monitoring). */
  readonly stats: { received: number; dropped: number; answered: number };
  close(): Promise<void>;
}

/** The IPv4 address of a named interface, for `dhcp.interface`. */
export function interfaceAddress(name: string): string | undefined {
  const v4 = networkInterfaces()[name]?.filter((a) => a.family === 'IPv4') ?? [];
  return (v4.find((a) => !a.internal) ?? v4[0])?.address;
}

const hexMac = (colons: string) => colons.replace(/:/g, '');

/** Every site of every tenant with the built-in server switched on, as pools. */
async function loadPools(deps: DhcpDeps, serverAddress: string): Promise<ServedPool[]> {
  const pools: ServedPool[] = [];
  const tenants = await deps.store.tenants.list({ limit: 1_000_000, offset: 0 });
  for (const t of tenants.items) {
    // One provisioning URL per tenant (with or without credentials), whatever its number of sites.
    const urls = new Map<boolean, string>();
    for (const site of await deps.store.sites.all(t.id)) {
      if (!site.dhcp.enabled) continue;
      const withCredentials = site.dhcp.credentialsInUrl;
      let url = urls.get(withCredentials);
      if (url === undefined) urls.set(withCredentials, (url = await deps.provisioningUrl(t.id, withCredentials)));
      pools.push(...sitePools(site, url, serverAddress));
    }
  }
  return pools;
}

export async function startDhcp(opts: DhcpOptions, deps: DhcpDeps): Promise<DhcpHandle> {
  const { logger } = deps;
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(opts.serverAddress)) throw new Error(`dhcp: server address ${opts.serverAddress} is not an IPv4 address`);
  const ourId = P.ipToInt(opts.serverAddress);
  const ports = opts.replyPorts ?? { client: 68, relay: 67 };
  const leases = new LeaseMachine({
    clock: deps.clock,
    persist: deps.store.dhcpLeases,
    ...(opts.offerSeconds !== undefined && { offerSeconds: opts.offerSeconds }),
    ...(opts.declineSeconds !== undefined && { declineSeconds: opts.declineSeconds }),
  });
  leases.load(await deps.store.dhcpLeases.all());
  let pools = await loadPools(deps, opts.serverAddress);
  let stale = false;
  const unsubscribe = deps.inventory.onChange((c) => {
    if (c.kind === 'site' || c.kind === 'tenant') stale = true;
  });
  const stats = { received: 0, dropped: 0, answered: 0 };

  const sock = createSocket({ type: 'udp4', reuseAddr: false });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(opts.port, opts.host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  sock.setBroadcast(true);
  // Room for a boot storm of a few hundred phones (the kernel caps it at net.core.rmem_max).
  sock.setRecvBufferSize(1 << 20);
  sock.on('error', (err) => logger.warn({ err }, 'dhcp socket error'));

  // Messages are handled one at a time: a lease decision and its write finish before the next.
  let queue = Promise.resolve();
  const inflight = { n: 0 };
  sock.on('message', (buf, from) => {
    stats.received++;
    if (inflight.n > 1000) {
      stats.dropped++;
      return;
    }
    inflight.n++;
    queue = queue
      .then(() => onMessage(buf, from))
      .catch((err: unknown) => logger.error({ err }, 'dhcp: message handling failed'))
      .finally(() => inflight.n--);
  });

  function drop(why: string, extra: Record<string, unknown> = {}): void {
    stats.dropped++;
    logger.debug({ ...extra, why }, 'dhcp: message dropped');
  }

  async function onMessage(buf: Buffer, from: RemoteInfo): Promise<void> {
    let req: P.DhcpPacket;
    try {
      req = P.parsePacket(buf);
    } catch (err) {
      drop((err as Error).message, { from: from.address });
      return;
    }
    if (req.op !== P.BOOTREQUEST) return drop('not a request');
    const type = P.messageType(req);
    const mac = P.ethernetMac(req);
    if (!type || type === P.MessageType.OFFER || type === P.MessageType.ACK || type === P.MessageType.NAK) return drop('no client message type');
    if (!mac) return drop('not an Ethernet client');
    if (req.hops > 16) return drop('too many relay hops');
    if (stale) {
      stale = false;
      pools = await loadPools(deps, opts.serverAddress);
    }
    const giaddr = P.ipToInt(req.giaddr);
    const ciaddr = P.ipToInt(req.ciaddr);
    const pool = giaddr ? poolFor(pools, giaddr) : ((type === P.MessageType.INFORM && ciaddr && poolFor(pools, ciaddr)) || poolFor(pools, ourId));
    if (!pool) return drop(giaddr ? `no pool for relay ${req.giaddr}` : 'no pool for this segment', { mac });
    const requested = P.readIpOption(req, P.Opt.REQUESTED_IP);
    const serverId = P.readIpOption(req, P.Opt.SERVER_ID);
    const decision = await leases.handle(
      pool,
      {
        type,
        mac: hexMac(mac),
        ciaddr,
        requestedIp: requested ? P.ipToInt(requested) : 0,
        serverId: serverId ? P.ipToInt(serverId) : 0,
        hostname: P.readTextOption(req, P.Opt.HOSTNAME, 63) ?? null,
      },
      ourId,
    );
    const log = { mac, site: pool.siteName, type: P.MESSAGE_NAMES[type], relay: giaddr ? req.giaddr : undefined };
    if (decision.reply === 'none') {
      if (decision.why === 'pool exhausted') logger.warn({ ...log, pool: pool.cidr }, 'dhcp: pool exhausted, no offer');
      else if (type === P.MessageType.DECLINE || type === P.MessageType.RELEASE) logger.info(log, `dhcp: ${decision.why}`);
      return drop(decision.why, log);
    }
    const reply = buildReply(req, decision, pool, opts.serverAddress);
    const to = destination(req, decision, pool, ports);
    logger.info({ ...log, reply: decision.reply, ip: P.intToIp(reply.yiaddr === '0.0.0.0' ? ciaddr : P.ipToInt(reply.yiaddr)), to: to.address }, 'dhcp: answered');
    await new Promise<void>((resolve) => sock.send(P.encodePacket(reply, maxReplyBytes(req)), to.port, to.address, () => resolve()));
    stats.answered++;
  }

  return {
    get address() {
      return sock.address();
    },
    stats,
    async close() {
      unsubscribe();
      await queue;
      await new Promise<void>((resolve) => sock.close(() => resolve()));
    },
  };
}

/** Option 57 bounds the reply (never below the 576 every client takes). */
function maxReplyBytes(req: P.DhcpPacket): number {
  const v = req.options.get(P.Opt.MAX_MESSAGE);
  const max = v?.length === 2 ? v.readUInt16BE(0) : P.DEFAULT_MAX_MESSAGE;
  return Math.min(Math.max(max, P.DEFAULT_MAX_MESSAGE), 1500) - P.IP_UDP_OVERHEAD;
}

/** RFC 2131 §4.1: relay first, then NAK by broadcast, then ciaddr, then broadcast on the segment. */
function destination(req: P.DhcpPacket, d: Decision, pool: ServedPool, ports: { client: number; relay: number }): { address: string; port: number } {
  if (req.giaddr !== '0.0.0.0') return { address: req.giaddr, port: ports.relay };
  if (d.reply !== 'nak' && req.ciaddr !== '0.0.0.0') return { address: req.ciaddr, port: ports.client };
  return { address: P.intToIp(pool.broadcast), port: ports.client };
}

const OWN_OPTIONS = new Set<number>([P.Opt.MESSAGE_TYPE, P.Opt.SERVER_ID, P.Opt.LEASE_TIME, P.Opt.RENEWAL_TIME, P.Opt.REBINDING_TIME]);

function buildReply(req: P.DhcpPacket, d: Exclude<Decision, { reply: 'none' }>, pool: ServedPool, serverAddress: string): P.DhcpPacket {
  const type = { offer: P.MessageType.OFFER, ack: P.MessageType.ACK, inform: P.MessageType.ACK, nak: P.MessageType.NAK }[d.reply];
  const options = new Map<number, Buffer>();
  options.set(P.Opt.MESSAGE_TYPE, Buffer.from([type]));
  options.set(P.Opt.SERVER_ID, P.optIps([serverAddress]));
  if (d.reply === 'nak') {
    options.set(P.Opt.MESSAGE, P.optText(d.message));
  } else {
    if (d.reply !== 'inform') {
      options.set(P.Opt.LEASE_TIME, P.optU32(d.leaseSeconds));
      options.set(P.Opt.RENEWAL_TIME, P.optU32(Math.floor(d.leaseSeconds / 2)));
      options.set(P.Opt.REBINDING_TIME, P.optU32(Math.floor((d.leaseSeconds * 7) / 8)));
    }
    // What the client asked for comes first, so a size limit drops what it did not ask for.
    const asked = [...(req.options.get(P.Opt.PARAM_LIST) ?? [])];
    for (const code of asked) {
      const v = pool.options.get(code);
      if (v && !OWN_OPTIONS.has(code)) options.set(code, v);
    }
    for (const [code, v] of pool.options) if (!options.has(code)) options.set(code, v);
  }
  // RFC 3046: relay agent information goes back to the relay unchanged.
  const agent = req.options.get(82);
  if (agent && req.giaddr !== '0.0.0.0') options.set(82, agent);
  const yiaddr = d.reply === 'offer' || d.reply === 'ack' ? P.intToIp(d.yiaddr) : '0.0.0.0';
  return {
    op: P.BOOTREPLY,
    htype: req.htype,
    hlen: req.hlen,
    hops: 0,
    xid: req.xid,
    secs: 0,
    flags: d.reply === 'nak' && req.giaddr !== '0.0.0.0' ? req.flags | P.BROADCAST_FLAG : req.flags,
    ciaddr: d.reply === 'inform' || (d.reply === 'ack' && req.ciaddr !== '0.0.0.0') ? req.ciaddr : '0.0.0.0',
    yiaddr,
    siaddr: '0.0.0.0',
    giaddr: req.giaddr,
    chaddr: req.chaddr,
    sname: '',
    file: '',
    options,
  };
}
