import type { Clock } from '../../clock.ts';
import type { DhcpLease } from '../../domain/types.ts';
import { intToIp, ipToInt, MessageType, type MessageTypeCode } from './packet.ts';

/**
 * The lease state machine of the built-in DHCP server (RFC 2131 §4.3): which address a client is
 * offered, when a request is acknowledged or refused, what RELEASE and DECLINE do. No sockets and
 * no wall clock: time comes from the injected clock, and every bound, released or declined lease is
 * written through `persist` before the answer that depends on it leaves (nothing promised is lost
 * on a crash). Offers live in memory only, for `offerSeconds`.
 */

/** One address pool: an IPv4 subnet of a site with the built-in server switched on. */
export interface Pool {
  tenantId: string;
  siteId: string;
  siteName: string;
  /** Canonical CIDR text. */
  cidr: string;
  network: number;
  mask: number;
  broadcast: number;
  /** Inclusive [first, last] address ranges handed out. */
  ranges: Array<[number, number]>;
  /** Fixed address by MAC (12 hex digits). */
  reservations: Map<string, number>;
  /** Addresses never handed out dynamically: routers, servers, other clients' reservations. */
  excluded: Set<number>;
  leaseSeconds: number;
}

export interface LeasePersistence {
  put(lease: DhcpLease): Promise<void>;
}

type State = 'offered' | DhcpLease['state'];

interface Lease {
  ip: number;
  mac: string;
  state: State;
  /** ms since epoch. */
  expiresAt: number;
  hostname: string | null;
}

/** What a client's message asks of the machine; the socket layer has parsed and checked it. */
export interface LeaseRequest {
  type: MessageTypeCode;
  /** 12 hex digits. */
  mac: string;
  ciaddr: number;
  /** Option 50, or 0. */
  requestedIp: number;
  /** Option 54, or 0. */
  serverId: number;
  hostname: string | null;
}

export type Decision =
  | { reply: 'offer' | 'ack'; yiaddr: number; leaseSeconds: number }
  /** INFORM: options only, no address, no lease time. */
  | { reply: 'inform' }
  | { reply: 'nak'; message: string }
  | { reply: 'none'; why: string };

export interface LeaseMachineOptions {
  clock: Clock;
  persist: LeasePersistence;
  /** How long an offer holds its address. @default 60 */
  offerSeconds?: number;
  /** How long a declined address is set aside. @default 3600 */
  declineSeconds?: number;
}

export class LeaseMachine {
  readonly #clock: Clock;
  readonly #persist: LeasePersistence;
  readonly #offerMs: number;
  readonly #declineMs: number;
  /** siteId → ip → lease */
  readonly #byIp = new Map<string, Map<number, Lease>>();
  /** siteId → mac → ip */
  readonly #byMac = new Map<string, Map<string, number>>();

  constructor(o: LeaseMachineOptions) {
    this.#clock = o.clock;
    this.#persist = o.persist;
    this.#offerMs = (o.offerSeconds ?? 60) * 1000;
    this.#declineMs = (o.declineSeconds ?? 3600) * 1000;
  }

  /** Loads stored leases (at start-up). */
  load(leases: readonly DhcpLease[]): void {
    for (const l of leases) this.#set(l.siteId, { ip: ipToInt(l.ip), mac: l.mac, state: l.state, expiresAt: Date.parse(l.expiresAt), hostname: l.hostname });
  }

  #now(): number {
    return this.#clock.now().getTime();
  }

  #ips(siteId: string): Map<number, Lease> {
    let m = this.#byIp.get(siteId);
    if (!m) this.#byIp.set(siteId, (m = new Map()));
    return m;
  }

  #macs(siteId: string): Map<string, number> {
    let m = this.#byMac.get(siteId);
    if (!m) this.#byMac.set(siteId, (m = new Map()));
    return m;
  }

  #set(siteId: string, lease: Lease): void {
    const ips = this.#ips(siteId);
    const macs = this.#macs(siteId);
    const old = ips.get(lease.ip);
    if (old && old.mac !== lease.mac && macs.get(old.mac) === lease.ip) macs.delete(old.mac);
    const prevIp = macs.get(lease.mac);
    // A client holds one address per site; the old one stays on record (expired) for nobody.
    if (prevIp !== undefined && prevIp !== lease.ip) {
      const prev = ips.get(prevIp);
      if (prev && prev.state === 'offered') ips.delete(prevIp);
    }
    ips.set(lease.ip, lease);
    if (lease.state !== 'declined') macs.set(lease.mac, lease.ip);
  }

  /** The client's current record in the site, if any. */
  #leaseOf(siteId: string, mac: string): Lease | undefined {
    const ip = this.#byMac.get(siteId)?.get(mac);
    const l = ip === undefined ? undefined : this.#byIp.get(siteId)?.get(ip);
    return l && l.mac === mac && l.state !== 'declined' ? l : undefined;
  }

  /** Whether `ip` is held by a client other than `mac` right now (offer, bound lease, or set aside). */
  #heldByOther(siteId: string, ip: number, mac: string): boolean {
    const l = this.#byIp.get(siteId)?.get(ip);
    if (!l) return false;
    if (l.state === 'declined') return l.expiresAt > this.#now();
    return l.mac !== mac && (l.state === 'bound' || l.state === 'offered') && l.expiresAt > this.#now();
  }

  #inRanges(pool: Pool, ip: number): boolean {
    return pool.ranges.some(([a, b]) => ip >= a && ip <= b);
  }

  #inSubnet(pool: Pool, ip: number): boolean {
    return ((ip & pool.mask) >>> 0) === pool.network;
  }

  /** Whether `mac` may be given `ip` in this pool. */
  #allowed(pool: Pool, ip: number, mac: string): boolean {
    const reserved = pool.reservations.get(mac);
    if (reserved !== undefined) return ip === reserved && !this.#heldByOther(pool.siteId, ip, mac);
    return this.#inRanges(pool, ip) && !pool.excluded.has(ip) && !this.#heldByOther(pool.siteId, ip, mac);
  }

  /**
   * The address to offer: the reservation, else the client's previous address, else the one it
   * asks for, else a never-used address, else the one released or expired longest ago. Bounded by
   * the pool size; `undefined` when the pool is full.
   */
  #choose(pool: Pool, mac: string, requested: number): number | undefined {
    const reserved = pool.reservations.get(mac);
    if (reserved !== undefined) return this.#heldByOther(pool.siteId, reserved, mac) ? undefined : reserved;
    const own = this.#leaseOf(pool.siteId, mac);
    if (own && this.#inSubnet(pool, own.ip) && this.#allowed(pool, own.ip, mac)) return own.ip;
    if (requested && this.#allowed(pool, requested, mac)) return requested;
    const ips = this.#ips(pool.siteId);
    let oldest: Lease | undefined;
    for (const [a, b] of pool.ranges) {
      for (let ip = a; ip <= b; ip++) {
        if (pool.excluded.has(ip)) continue;
        const l = ips.get(ip);
        if (!l) return ip;
        if (!this.#heldByOther(pool.siteId, ip, mac) && (!oldest || l.expiresAt < oldest.expiresAt)) oldest = l;
      }
    }
    return oldest?.ip;
  }

  async #bind(pool: Pool, req: LeaseRequest, ip: number): Promise<Decision> {
    const lease: Lease = { ip, mac: req.mac, state: 'bound', expiresAt: this.#now() + pool.leaseSeconds * 1000, hostname: req.hostname };
    await this.#save(pool, lease);
    return { reply: 'ack', yiaddr: ip, leaseSeconds: pool.leaseSeconds };
  }

  async #save(pool: Pool, lease: Lease): Promise<void> {
    await this.#persist.put({
      tenantId: pool.tenantId,
      siteId: pool.siteId,
      ip: intToIp(lease.ip),
      mac: lease.mac,
      state: lease.state as DhcpLease['state'],
      expiresAt: new Date(lease.expiresAt).toISOString(),
      hostname: lease.hostname,
      updatedAt: this.#clock.now().toISOString(),
    });
    this.#set(pool.siteId, lease);
  }

  /** Decides the answer to one client message for `pool`; `ourId` is this server's identifier. */
  async handle(pool: Pool, req: LeaseRequest, ourId: number): Promise<Decision> {
    const siteId = pool.siteId;
    const forOther = req.serverId !== 0 && req.serverId !== ourId;
    switch (req.type) {
      case MessageType.DISCOVER: {
        const ip = this.#choose(pool, req.mac, req.requestedIp);
        if (ip === undefined) return { reply: 'none', why: 'pool exhausted' };
        const own = this.#leaseOf(siteId, req.mac);
        // A bound lease being rediscovered keeps its state (and its stored expiry) until the REQUEST.
        if (!(own && own.ip === ip && own.state === 'bound' && own.expiresAt > this.#now())) {
          this.#set(siteId, { ip, mac: req.mac, state: 'offered', expiresAt: this.#now() + this.#offerMs, hostname: req.hostname });
        }
        return { reply: 'offer', yiaddr: ip, leaseSeconds: pool.leaseSeconds };
      }
      case MessageType.REQUEST: {
        if (forOther) {
          // The client took another server's offer: free ours at once.
          const own = this.#leaseOf(siteId, req.mac);
          if (own?.state === 'offered') this.#ips(siteId).delete(own.ip);
          return { reply: 'none', why: 'request for another server' };
        }
        const own = this.#leaseOf(siteId, req.mac);
        if (req.serverId !== 0) {
          // SELECTING: it must ask for what we offered (or already gave it).
          if (!req.requestedIp) return { reply: 'nak', message: 'no requested address' };
          if (own && own.ip === req.requestedIp && this.#allowed(pool, own.ip, req.mac)) return this.#bind(pool, req, own.ip);
          return { reply: 'nak', message: 'address not offered to this client' };
        }
        if (req.requestedIp) {
          // INIT-REBOOT: the client remembers an address.
          if (!this.#inSubnet(pool, req.requestedIp)) return { reply: 'nak', message: 'wrong network' };
          if (own && own.ip === req.requestedIp && own.state !== 'offered') {
            return this.#allowed(pool, own.ip, req.mac) ? this.#bind(pool, req, own.ip) : { reply: 'nak', message: 'address no longer available' };
          }
          if (this.#heldByOther(siteId, req.requestedIp, req.mac)) return { reply: 'nak', message: 'address in use' };
          return { reply: 'none', why: 'no record of this client' };
        }
        if (req.ciaddr) {
          // RENEWING or REBINDING.
          if (own && own.ip === req.ciaddr && own.state === 'bound' && this.#allowed(pool, own.ip, req.mac)) return this.#bind(pool, req, own.ip);
          if (!this.#inSubnet(pool, req.ciaddr) || this.#heldByOther(siteId, req.ciaddr, req.mac)) return { reply: 'nak', message: 'address not leased to this client' };
          return { reply: 'none', why: 'no record of this lease' };
        }
        return { reply: 'none', why: 'request without an address' };
      }
      case MessageType.DECLINE: {
        if (forOther || !req.requestedIp) return { reply: 'none', why: 'decline not for us' };
        const own = this.#leaseOf(siteId, req.mac);
        if (own?.ip !== req.requestedIp) return { reply: 'none', why: 'decline of an address not given to this client' };
        this.#macs(siteId).delete(req.mac);
        await this.#save(pool, { ip: own.ip, mac: req.mac, state: 'declined', expiresAt: this.#now() + this.#declineMs, hostname: null });
        return { reply: 'none', why: `address ${intToIp(own.ip)} declined: set aside` };
      }
      case MessageType.RELEASE: {
        if (forOther) return { reply: 'none', why: 'release not for us' };
        const own = this.#leaseOf(siteId, req.mac);
        if (!own || own.ip !== req.ciaddr || own.state !== 'bound') return { reply: 'none', why: 'release of an address not leased to this client' };
        await this.#save(pool, { ...own, state: 'released', expiresAt: this.#now() });
        return { reply: 'none', why: `address ${intToIp(own.ip)} released` };
      }
      case MessageType.INFORM:
        return { reply: 'inform' };
      default:
        return { reply: 'none', why: 'not a client message' };
    }
  }
}
