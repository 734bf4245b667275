import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/clock.ts';
import { DEFAULT_SITE_DHCP, type DhcpLease, type Site } from '../../src/domain/types.ts';
import { LeaseMachine, type LeaseRequest } from '../../src/server/dhcp/leases.ts';
import { intToIp, ipToInt, MessageType } from '../../src/server/dhcp/packet.ts';
import { sitePools } from '../../src/server/dhcp/pools.ts';

const site = (dhcp: Partial<Site['dhcp']> = {}): Site => ({
  id: 'site-1',
  tenantId: 't-1',
  name: 'Branch',
  description: '',
  location: '',
  subnets: ['10.0.0.0/24'],
  timeZone: 'UTC',
  sip: {},
  ntp: {},
  dhcp: { ...DEFAULT_SITE_DHCP, enabled: true, ranges: [{ start: '10.0.0.10', end: '10.0.0.12' }], leaseSeconds: 600, ...dhcp },
  profileIds: [],
  deviceCount: 0,
  createdAt: '',
  updatedAt: '',
});

const SERVER = ipToInt('10.0.0.1');
const OTHER = ipToInt('10.0.0.2');

function setup(dhcp: Partial<Site['dhcp']> = {}) {
  const clock = new ManualClock('2026-06-01T00:00:00Z');
  const stored = new Map<string, DhcpLease>();
  const m = new LeaseMachine({ clock, persist: { put: async (l) => void stored.set(l.ip, l) }, offerSeconds: 30, declineSeconds: 120 });
  const [pool] = sitePools(site(dhcp), 'http://prov/p/k/', '10.0.0.1');
  if (!pool) throw new Error('no pool');
  const ask = (type: number, mac: string, o: Partial<LeaseRequest> = {}) =>
    m.handle(pool, { type: type as LeaseRequest['type'], mac, ciaddr: 0, requestedIp: 0, serverId: 0, hostname: null, ...o }, SERVER);
  const lease = async (mac: string) => {
    const offer = await ask(MessageType.DISCOVER, mac);
    assert.is(offer.reply, 'offer');
    const ip = (offer as { yiaddr: number }).yiaddr;
    const ack = await ask(MessageType.REQUEST, mac, { serverId: SERVER, requestedIp: ip });
    assert.is(ack.reply, 'ack');
    return ip;
  };
  return { clock, stored, m, pool, ask, lease };
}

const A = '0004f2000001';
const B = '0004f2000002';
const C = '0004f2000003';
const D = '0004f2000004';

test('DISCOVER, OFFER, REQUEST, ACK; the same client gets the same address again', async () => {
  const { ask, stored, lease } = setup();
  const ip = await lease(A);
  assert.is(intToIp(ip), '10.0.0.10');
  assert.is(stored.get('10.0.0.10')?.state, 'bound');
  assert.is(stored.get('10.0.0.10')?.expiresAt, '2026-06-01T00:10:00.000Z');
  const again = await ask(MessageType.DISCOVER, A);
  assert.equal(again, { reply: 'offer', yiaddr: ip, leaseSeconds: 600 });
  assert.is(intToIp(await lease(B)), '10.0.0.11');
});

test('a REQUEST for another server is ignored and frees our offer at once', async () => {
  const { ask } = setup();
  const offer = await ask(MessageType.DISCOVER, A);
  const ip = (offer as { yiaddr: number }).yiaddr;
  assert.is((await ask(MessageType.REQUEST, A, { serverId: OTHER, requestedIp: ip })).reply, 'none');
  // Freed: the next client is offered that address.
  assert.is((await ask(MessageType.DISCOVER, B) as { yiaddr: number }).yiaddr, ip);
});

test('NAK for an address not offered, for the wrong network, and for one in use', async () => {
  const { ask, lease } = setup();
  await ask(MessageType.DISCOVER, A);
  assert.is((await ask(MessageType.REQUEST, A, { serverId: SERVER, requestedIp: ipToInt('10.0.0.12') })).reply, 'nak');
  const b = await lease(B);
  // INIT-REBOOT into another network, or into someone else's address.
  assert.is((await ask(MessageType.REQUEST, C, { requestedIp: ipToInt('192.168.1.5') })).reply, 'nak');
  assert.is((await ask(MessageType.REQUEST, C, { requestedIp: b })).reply, 'nak');
  // INIT-REBOOT with no record of the client: silent (RFC 2131 §4.3.2).
  assert.is((await ask(MessageType.REQUEST, D, { requestedIp: ipToInt('10.0.0.12') })).reply, 'none');
  // INIT-REBOOT of the owner: acknowledged.
  assert.is((await ask(MessageType.REQUEST, B, { requestedIp: b })).reply, 'ack');
});

test('renewal extends the lease; expiry frees the address for others', async () => {
  const { ask, clock, stored, lease } = setup({ ranges: [{ start: '10.0.0.10', end: '10.0.0.10' }] });
  const ip = await lease(A);
  clock.advance(300_000);
  assert.is((await ask(MessageType.REQUEST, A, { ciaddr: ip })).reply, 'ack');
  assert.is(stored.get(intToIp(ip))?.expiresAt, '2026-06-01T00:15:00.000Z');
  // Full pool while A holds it.
  assert.equal(await ask(MessageType.DISCOVER, B), { reply: 'none', why: 'pool exhausted' });
  clock.advance(600_001);
  assert.is((await ask(MessageType.DISCOVER, B) as { yiaddr: number }).yiaddr, ip);
  // A renewing an address now offered to B is refused.
  assert.is((await ask(MessageType.REQUEST, A, { ciaddr: ip })).reply, 'nak');
});

test('RELEASE frees the address; DECLINE sets it aside for the decline time', async () => {
  const { ask, clock, stored, lease } = setup({ ranges: [{ start: '10.0.0.10', end: '10.0.0.11' }] });
  const a = await lease(A);
  assert.is((await ask(MessageType.RELEASE, A, { ciaddr: a, serverId: SERVER })).reply, 'none');
  assert.is(stored.get(intToIp(a))?.state, 'released');
  const b = await lease(B);
  assert.is(b, ipToInt('10.0.0.11'), 'a never-used address goes before a released one');
  // B finds its address in use.
  await ask(MessageType.DECLINE, B, { requestedIp: b, serverId: SERVER });
  assert.is(stored.get(intToIp(b))?.state, 'declined');
  const c = await ask(MessageType.DISCOVER, C);
  assert.is((c as { yiaddr: number }).yiaddr, a, 'the declined address is not offered');
  await ask(MessageType.REQUEST, C, { serverId: SERVER, requestedIp: a });
  assert.equal(await ask(MessageType.DISCOVER, D), { reply: 'none', why: 'pool exhausted' });
  clock.advance(121_000);
  assert.is((await ask(MessageType.DISCOVER, D) as { yiaddr: number }).yiaddr, b, 'set aside only for the decline time');
  // A release or decline by someone else changes nothing.
  assert.is((await ask(MessageType.RELEASE, D, { ciaddr: a, serverId: SERVER })).reply, 'none');
  assert.is(stored.get(intToIp(a))?.state, 'bound');
});

test('reservations: the owner always gets its address, nobody else does', async () => {
  const { ask, lease } = setup({ reservations: [{ mac: C, ip: '10.0.0.10' }] });
  assert.is(intToIp(await lease(A)), '10.0.0.11');
  assert.is(intToIp(await lease(C)), '10.0.0.10');
  // Outside the ranges too.
  const out = setup({ reservations: [{ mac: C, ip: '10.0.0.200' }] });
  assert.is(intToIp(await out.lease(C)), '10.0.0.200');
  assert.is((await out.ask(MessageType.REQUEST, A, { requestedIp: ipToInt('10.0.0.200') })).reply, 'nak');
});

test('a full pool answers no offer, quickly, however large the pool', async () => {
  const { ask, lease } = setup({ ranges: [] }); // whole /24: 10.0.0.2 … 10.0.0.254 (10.0.0.1 is the server)
  const seen = new Set<number>();
  for (let i = 0; i < 253; i++) seen.add(await lease(`0004f2${i.toString(16).padStart(6, '0')}`));
  assert.is(seen.size, 253);
  assert.not.ok(seen.has(ipToInt('10.0.0.1')), 'never the server itself');
  const t = Date.now();
  assert.equal(await ask(MessageType.DISCOVER, 'aabbccddeeff'), { reply: 'none', why: 'pool exhausted' });
  assert.ok(Date.now() - t < 1000);
});

test('leases loaded from the store survive a restart', async () => {
  const first = setup();
  const ip = await first.lease(A);
  const again = setup();
  again.m.load([...first.stored.values()]);
  assert.is((await again.ask(MessageType.DISCOVER, B) as { yiaddr: number }).yiaddr !== ip, true);
  assert.is((await again.ask(MessageType.REQUEST, A, { ciaddr: ip })).reply, 'ack');
});

test('INFORM gets options only', async () => {
  const { ask } = setup();
  assert.equal(await ask(MessageType.INFORM, A, { ciaddr: ipToInt('10.0.0.99') }), { reply: 'inform' });
});

test.run();
