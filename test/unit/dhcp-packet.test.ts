import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DhcpParseError,
  encodePacket,
  ethernetMac,
  messageType,
  MessageType,
  Opt,
  parsePacket,
  readIpOption,
  readTextOption,
  type DhcpPacket,
} from '../../src/server/dhcp/packet.ts';

/** Hex with spaces and comments (`# ...` to end of line) into bytes. */
const hex = (s: string) => Buffer.from(s.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');
const zeros = (n: number) => '00'.repeat(n);

/** A DHCPDISCOVER as udhcpc sends it, laid out field by field (RFC 2131 §2). */
const discover = (options: string, extra = { sname: zeros(64), file: zeros(128) }) =>
  hex(`
    01 01 06 00          # op BOOTREQUEST, htype Ethernet, hlen 6, hops 0
    39 03 f3 26          # xid
    00 00 80 00          # secs 0, flags: broadcast
    00000000 00000000 00000000 00000000   # ciaddr yiaddr siaddr giaddr
    0004f2abcdef ${zeros(10)}             # chaddr (16 bytes)
    ${extra.sname} ${extra.file}
    63 82 53 63          # magic cookie
    ${options}
  `);

test('parses a DISCOVER byte for byte', () => {
  const p = parsePacket(
    discover(`
      35 01 01                         # 53 message type DISCOVER
      3d 07 01 0004f2abcdef            # 61 client id
      37 04 01 03 42 a0                # 55 parameter list: 1 3 66 160
      0c 05 70 68 6f 6e 65             # 12 host name "phone"
      ff                               # end
    `),
  );
  assert.is(p.op, 1);
  assert.is(p.xid, 0x3903f326);
  assert.is(p.flags, 0x8000);
  assert.is(p.ciaddr, '0.0.0.0');
  assert.is(messageType(p), MessageType.DISCOVER);
  assert.is(ethernetMac(p), '00:04:f2:ab:cd:ef');
  assert.equal([...(p.options.get(Opt.PARAM_LIST) ?? [])], [1, 3, 66, 160]);
  assert.is(readTextOption(p, Opt.HOSTNAME), 'phone');
});

test('PAD is one byte: nothing after it is skipped', () => {
  const p = parsePacket(discover(`00 35 01 03  00 00  32 04 0a 00 00 0a  00  36 04 0a 00 00 01 ff`));
  assert.is(messageType(p), MessageType.REQUEST);
  assert.is(readIpOption(p, Opt.REQUESTED_IP), '10.0.0.10');
  assert.is(readIpOption(p, Opt.SERVER_ID), '10.0.0.1');
});

test('repeated options are concatenated (RFC 3396); overload reads file and sname', () => {
  const p = parsePacket(discover(`35 01 01  0c 02 61 62  0c 02 63 64  ff`));
  assert.is(readTextOption(p, Opt.HOSTNAME), 'abcd');
  const file = ('3c 03 50 6f 6c ff').replace(/\s/g, '').padEnd(256, '0'); // 60 vendor class "Pol"
  const sname = ('0f 03 6c 61 6e ff').replace(/\s/g, '').padEnd(128, '0'); // 15 domain "lan"
  const q = parsePacket(discover(`35 01 01 34 01 03 ff`, { sname, file }));
  assert.is(readTextOption(q, Opt.VENDOR_CLASS), 'Pol');
  assert.is(readTextOption(q, Opt.DOMAIN_NAME), 'lan');
  assert.is(q.file, '');
});

test('refuses what is not a DHCP message, saying why', () => {
  const cases: Array<[Buffer, RegExp]> = [
    [Buffer.alloc(10), /too short/],
    [discover('ff').fill(3, 0, 1), /unknown op/],
    [Buffer.concat([discover('ff').subarray(0, 236), hex('00000000 ff')]), /magic cookie/],
    [discover('35 01'), /no length byte|runs past/],
    [discover('35 05 01 ff'), /runs past the end/],
    [discover('35 01 01'), /do not end/],
    [discover('35 01 01 34 01 07 ff'), /overload/],
  ];
  const hlen = discover('ff');
  hlen[2] = 17;
  cases.push([hlen, /hardware address length/]);
  for (const [buf, why] of cases) {
    assert.throws(() => parsePacket(buf), (e: unknown) => e instanceof DhcpParseError && why.test((e as Error).message), String(why));
  }
  // A known option code with a bad value is the reader's problem, not a crash.
  const p = parsePacket(discover('35 02 01 01 32 03 0a 00 00 ff'));
  assert.is(messageType(p), undefined);
  assert.is(readIpOption(p, Opt.REQUESTED_IP), undefined);
});

test('encodes a reply that parses back, padded to 300 bytes, long options split', () => {
  const long = Buffer.alloc(300, 0x41);
  const reply: DhcpPacket = {
    op: 2,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0xdeadbeef,
    secs: 0,
    flags: 0,
    ciaddr: '0.0.0.0',
    yiaddr: '10.0.0.10',
    siaddr: '0.0.0.0',
    giaddr: '10.9.0.1',
    chaddr: hex('0004f2abcdef'),
    sname: '',
    file: '',
    options: new Map([
      [Opt.MESSAGE_TYPE, Buffer.from([2])],
      [Opt.SERVER_ID, hex('0a000001')],
      [Opt.POLYCOM_BOOT_SERVER, Buffer.from('https://prov.example/p/k/')],
    ]),
  };
  const small = encodePacket(reply);
  assert.is(small.length, 300);
  assert.is(small.readUInt32BE(236), 0x63825363);
  const back = parsePacket(small);
  assert.is(back.yiaddr, '10.0.0.10');
  assert.is(back.giaddr, '10.9.0.1');
  assert.is(back.xid, 0xdeadbeef);
  assert.is(readTextOption(back, Opt.POLYCOM_BOOT_SERVER), 'https://prov.example/p/k/');
  reply.options.set(43, long);
  const big = encodePacket(reply, 1400);
  assert.equal(parsePacket(big).options.get(43), long);
  // Beyond the size limit an option is left out rather than the message broken.
  const capped = encodePacket(reply, 548);
  assert.ok(capped.length <= 548);
  assert.is(parsePacket(capped).options.get(43), undefined);
  assert.is(messageType(parsePacket(capped)), MessageType.OFFER);
});

test.run();
