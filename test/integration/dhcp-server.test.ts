import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../src/logger.ts';
import { startDhcp, type DhcpHandle } from '../../src/server/dhcp/server.ts';
import * as P from '../../src/server/dhcp/packet.ts';
import { bootstrapAdmin, startServer } from '../helpers/app.ts';

/**
 * The DHCP server on loopback, acting as a relay (giaddr 127.0.0.1): replies come back unicast to
 * the relay's port, so no privileged port and no broadcast is needed. Real clients in network
 * namespaces are in dhcp-netns.test.ts.
 */
const s = await startServer();
const admin = await bootstrapAdmin(s);
const tenant = (await s.call('POST', '/api/v1/tenants', { token: admin, body: { name: 'Relay Co' } })).body;
const site = (
  await s.call('POST', `/api/v1/tenants/${tenant.id}/sites`, {
    token: admin,
    body: {
      name: 'Loop',
      subnets: ['127.0.0.0/24'],
      ntp: { server: '127.0.0.5' },
      dhcp: {
        enabled: true,
        ranges: [{ start: '127.0.0.100', end: '127.0.0.150' }],
        routers: ['127.0.0.1'],
        dnsServers: ['127.0.0.53', '127.0.0.54'],
        domainName: 'voice.example',
        leaseSeconds: 3600,
        credentialsInUrl: false,
        options: [{ code: 150, type: 'ips', value: '127.0.0.9' }, { code: 2, type: 'uint32', value: '3600' }],
        reservations: [{ mac: '00:04:f2:00:00:99', ip: '127.0.0.99' }],
      },
    },
  })
).body;
assert.ok(site.id, JSON.stringify(site));
const prov = (await s.call('GET', `/api/v1/tenants/${tenant.id}/provisioning`, { token: admin })).body;

const relay = createSocket('udp4');
await new Promise<void>((r) => relay.bind(0, '127.0.0.1', () => r()));
const relayPort = relay.address().port;
const replies: P.DhcpPacket[] = [];
relay.on('message', (b) => replies.push(P.parsePacket(b)));

const SERVER_ID = '10.99.0.1';
const start = () =>
  startDhcp(
    { host: '127.0.0.1', port: 0, serverAddress: SERVER_ID, replyPorts: { client: relayPort, relay: relayPort } },
    {
      store: s.app.store,
      inventory: s.app.inventory,
      clock: { now: () => new Date() },
      logger: silentLogger(),
      provisioningUrl: async () => prov.dhcp.option160WithoutCredentials,
    },
  );
let dhcp: DhcpHandle = await start();

test.after(async () => {
  await dhcp.close();
  relay.close();
  await s.stop();
});

let xid = 1000;
const macBytes = (mac: string) => Buffer.from(mac.replace(/:/g, ''), 'hex');
function request(type: number, mac: string, o: { ciaddr?: string; requested?: string; serverId?: string; giaddr?: string; extra?: Array<[number, Buffer]> } = {}): P.DhcpPacket {
  const options = new Map<number, Buffer>([[P.Opt.MESSAGE_TYPE, Buffer.from([type])]]);
  if (o.requested) options.set(P.Opt.REQUESTED_IP, P.optIps([o.requested]));
  if (o.serverId) options.set(P.Opt.SERVER_ID, P.optIps([o.serverId]));
  options.set(P.Opt.PARAM_LIST, Buffer.from([1, 3, 6, 15, 42, 66, 160]));
  for (const [k, v] of o.extra ?? []) options.set(k, v);
  return {
    op: 1, htype: 1, hlen: 6, hops: 1, xid: xid++, secs: 0, flags: 0,
    ciaddr: o.ciaddr ?? '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: o.giaddr ?? '127.0.0.1',
    chaddr: macBytes(mac), sname: '', file: '', options,
  };
}

const send = (buf: Buffer) => new Promise<void>((r) => relay.send(buf, dhcp.address.port, '127.0.0.1', () => r()));

const poll = async (done: () => boolean, ms: number) => {
  for (const end = Date.now() + ms; !done() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 1));
};

/** Sends and waits until the server has handled everything it received; returns the reply, if any. */
async function exchange(p: P.DhcpPacket): Promise<P.DhcpPacket | undefined> {
  const { received, answered } = dhcp.stats;
  await send(P.encodePacket(p, 1400));
  await poll(() => dhcp.stats.received > received && dhcp.stats.answered + dhcp.stats.dropped >= dhcp.stats.received, 10_000);
  if (dhcp.stats.answered > answered) await poll(() => replies.some((r) => r.xid === p.xid), 2000);
  return replies.find((r) => r.xid === p.xid);
}

const A = '00:04:f2:00:00:01';
let leased = '';

test('a relayed DISCOVER is offered an address of the relay subnet, with every option, unicast to the relay', async () => {
  const offer = await exchange(request(P.MessageType.DISCOVER, A, { extra: [[82, Buffer.from([1, 3, 0x61, 0x62, 0x63])]] }));
  assert.ok(offer, 'an offer');
  assert.is(P.messageType(offer), P.MessageType.OFFER);
  assert.is(offer.yiaddr, '127.0.0.100');
  assert.is(offer.giaddr, '127.0.0.1');
  assert.is(P.readIpOption(offer, P.Opt.SERVER_ID), SERVER_ID);
  assert.is(P.readIpOption(offer, P.Opt.SUBNET_MASK), '255.255.255.0');
  assert.is(P.readIpOption(offer, P.Opt.ROUTER), '127.0.0.1');
  assert.equal(offer.options.get(P.Opt.DNS), P.optIps(['127.0.0.53', '127.0.0.54']));
  assert.is(P.readIpOption(offer, P.Opt.NTP), '127.0.0.5', 'the site NTP server');
  assert.is(P.readTextOption(offer, P.Opt.DOMAIN_NAME), 'voice.example');
  assert.is(P.readTextOption(offer, P.Opt.POLYCOM_BOOT_SERVER), prov.dhcp.option160WithoutCredentials);
  assert.is(P.readTextOption(offer, P.Opt.TFTP_SERVER), prov.dhcp.option160WithoutCredentials);
  assert.is(offer.options.get(P.Opt.LEASE_TIME)?.readUInt32BE(0), 3600);
  assert.is(P.readIpOption(offer, 150), '127.0.0.9');
  assert.is(offer.options.get(2)?.readUInt32BE(0), 3600);
  assert.equal(offer.options.get(82), Buffer.from([1, 3, 0x61, 0x62, 0x63]), 'relay agent information echoed');
  const ack = await exchange(request(P.MessageType.REQUEST, A, { requested: offer.yiaddr, serverId: SERVER_ID }));
  assert.is(ack && P.messageType(ack), P.MessageType.ACK);
  assert.is(ack?.yiaddr, '127.0.0.100');
  leased = ack?.yiaddr ?? '';
  const list = await s.call('GET', `/api/v1/tenants/${tenant.id}/sites/${site.id}/dhcp/leases`, { token: admin });
  assert.is(list.status, 200);
  assert.is(list.body.items.length, 1);
  assert.is(list.body.items[0].ip, '127.0.0.100');
  assert.is(list.body.items[0].mac, '0004f2000001');
  assert.is(list.body.items[0].state, 'active');
});

test('reservation, INFORM, NAK, and silence for requests meant for another server', async () => {
  const r = await exchange(request(P.MessageType.DISCOVER, '00:04:f2:00:00:99'));
  assert.is(r?.yiaddr, '127.0.0.99');
  const inform = await exchange(request(P.MessageType.INFORM, '00:04:f2:00:00:77', { ciaddr: '127.0.0.77' }));
  assert.is(inform && P.messageType(inform), P.MessageType.ACK);
  assert.is(inform?.yiaddr, '0.0.0.0');
  assert.is(inform?.options.get(P.Opt.LEASE_TIME), undefined, 'INFORM carries no lease time');
  assert.is(inform && P.readTextOption(inform, P.Opt.POLYCOM_BOOT_SERVER), prov.dhcp.option160WithoutCredentials);
  const nak = await exchange(request(P.MessageType.REQUEST, '00:04:f2:00:00:55', { requested: '127.0.0.130', serverId: SERVER_ID }));
  assert.is(nak && P.messageType(nak), P.MessageType.NAK);
  assert.ok(nak && (nak.flags & P.BROADCAST_FLAG) !== 0, 'a relayed NAK asks the relay to broadcast');
  assert.is(await exchange(request(P.MessageType.REQUEST, A, { requested: leased, serverId: '10.99.0.2' })), undefined);
  // A relay whose subnet no site serves gets nothing.
  assert.is(await exchange(request(P.MessageType.DISCOVER, A, { giaddr: '192.0.2.1' })), undefined);
});

test('site settings that do not fit are refused, nothing changes', async () => {
  const bad = [
    { ranges: [{ start: '10.1.0.1', end: '10.1.0.9' }] },
    { ranges: [{ start: '127.0.0.200', end: '127.0.0.100' }] },
    { reservations: [{ mac: 'nonsense', ip: '127.0.0.3' }] },
    { options: [{ code: 53, type: 'uint8', value: '1' }] },
    { options: [{ code: 150, type: 'ip', value: 'not-an-ip' }] },
    { options: [{ code: 151, type: 'uint8', value: '256' }] },
    { leaseSeconds: 5 },
    { routers: ['1.2.3'] },
  ];
  for (const dhcpPatch of bad) {
    const r = await s.call('PATCH', `/api/v1/tenants/${tenant.id}/sites/${site.id}`, { token: admin, body: { dhcp: dhcpPatch } });
    assert.is(r.status, 400, JSON.stringify(dhcpPatch));
    assert.ok(r.body.error.details?.length, 'says which field');
  }
  const now = (await s.call('GET', `/api/v1/tenants/${tenant.id}/sites/${site.id}`, { token: admin })).body;
  assert.equal(now.dhcp, site.dhcp);
  const noV4 = await s.call('POST', `/api/v1/tenants/${tenant.id}/sites`, { token: admin, body: { name: 'Six', subnets: ['2001:db8::/64'], dhcp: { enabled: true } } });
  assert.is(noV4.status, 400);
});

test('leases survive a restart of the server', async () => {
  await dhcp.close();
  dhcp = await start();
  const offer = await exchange(request(P.MessageType.DISCOVER, A));
  assert.is(offer?.yiaddr, leased);
  const other = await exchange(request(P.MessageType.DISCOVER, '00:04:f2:00:00:02'));
  assert.ok(other && other.yiaddr !== leased, 'nobody else is offered it');
});

/** A valid request, then corrupted in one of several ways. */
function mutate(base: Buffer): Buffer {
  const b = Buffer.from(base);
  switch (Math.floor(Math.random() * 6)) {
    case 0: // flip random bits
      for (let i = 0; i < 1 + Math.floor(Math.random() * 8); i++) b[Math.floor(Math.random() * b.length)]! ^= 1 << Math.floor(Math.random() * 8);
      return b;
    case 1: // truncate
      return b.subarray(0, Math.floor(Math.random() * b.length));
    case 2: // garbage options
      return Buffer.concat([b.subarray(0, 240), randomBytes(Math.floor(Math.random() * 300))]);
    case 3: // a wrong option length
      b[241 + Math.floor(Math.random() * 10)] = Math.floor(Math.random() * 256);
      return b;
    case 4: // entirely random
      return randomBytes(Math.floor(Math.random() * 600));
    default: // random header bytes
      for (let i = 0; i < 4; i++) b[Math.floor(Math.random() * 240)] = Math.floor(Math.random() * 256);
      return b;
  }
}

/** Whether the server may answer this message at all. */
function answerable(buf: Buffer): boolean {
  try {
    const p = P.parsePacket(buf);
    const t = P.messageType(p);
    return p.op === 1 && P.ethernetMac(p) !== undefined && p.hops <= 16 && p.giaddr.startsWith('127.0.0.') && (t === 1 || t === 3 || t === 8);
  } catch {
    return false;
  }
}

test('fuzz: 10,000 malformed packets against the codec and 10,000 against the running server', async () => {
  const bases = [
    P.encodePacket(request(P.MessageType.DISCOVER, '00:04:f2:11:22:33')),
    P.encodePacket(request(P.MessageType.REQUEST, '00:04:f2:11:22:34', { requested: '127.0.0.120', serverId: SERVER_ID })),
    P.encodePacket(request(P.MessageType.INFORM, '00:04:f2:11:22:35', { ciaddr: '127.0.0.120' })),
    P.encodePacket(request(P.MessageType.RELEASE, '00:04:f2:11:22:36', { ciaddr: '127.0.0.121', serverId: SERVER_ID })),
  ];
  for (let i = 0; i < 10_000; i++) {
    const buf = mutate(bases[i % bases.length] as Buffer);
    try {
      const p = P.parsePacket(buf);
      P.encodePacket({ ...p, op: 2 });
    } catch (e) {
      if (!(e instanceof P.DhcpParseError)) throw e;
    }
  }
  replies.length = 0;
  const answeredBefore = dhcp.stats.answered;
  const allowed = new Set<number>();
  const startCount = dhcp.stats.received;
  let sent = 0;
  for (let batch = 0; batch < 200; batch++) {
    for (let i = 0; i < 50; i++) {
      const buf = mutate(bases[(batch * 50 + i) % bases.length] as Buffer);
      // A unique xid per packet (where there is one) tells which packet a reply answers.
      if (buf.length >= 8) buf.writeUInt32BE(0x10000000 + sent, 4);
      if (answerable(buf)) allowed.add(0x10000000 + sent);
      sent++;
      relay.send(buf, dhcp.address.port, '127.0.0.1');
    }
    // Let the server catch up before the next batch (loopback drops what overflows its buffer).
    await poll(() => dhcp.stats.received - startCount >= sent, 2000);
  }
  await poll(() => dhcp.stats.answered + dhcp.stats.dropped >= dhcp.stats.received, 5000);
  await poll(() => replies.length >= dhcp.stats.answered - answeredBefore, 2000);
  const wrong = replies.filter((r) => !allowed.has(r.xid));
  assert.is(wrong.length, 0, `answered ${wrong.length} packets that must not be answered`);
  assert.ok(dhcp.stats.received - startCount > 9000, `received ${dhcp.stats.received - startCount}`);
  // Still alive and correct afterwards.
  const offer = await exchange(request(P.MessageType.DISCOVER, A));
  assert.is(offer?.yiaddr, leased);
});

test.run();
