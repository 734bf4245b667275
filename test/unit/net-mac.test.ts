import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { normalizeMac, normalizeMacPrefix } from '../../src/domain/mac.ts';
import { cidrContains, cidrsOverlap, parseCidr } from '../../src/domain/net.ts';

test('normalizeMac', () => {
  assert.is(normalizeMac('00:04:F2:AB:CD:EF'), '0004f2abcdef');
  assert.is(normalizeMac('00-04-f2-ab-cd-ef'), '0004f2abcdef');
  assert.is(normalizeMac('0004F2ABCDEF'), '0004f2abcdef');
  for (const bad of ['', '0004f2abcde', '0004f2abcdeg', '00:04-f2:ab:cd:ef', '00:04:f2:ab:cd:ef:', '0004.f2ab.cdef', '\u00000004f2abcdef']) {
    assert.is(normalizeMac(bad), undefined, bad);
  }
});

test('normalizeMacPrefix', () => {
  assert.is(normalizeMacPrefix('00:04:F2'), '0004f2');
  assert.is(normalizeMacPrefix('64167f'), '64167f');
  assert.is(normalizeMacPrefix('0'), '0');
  assert.is(normalizeMacPrefix('zz'), undefined);
  assert.is(normalizeMacPrefix('0004f2abcdef0'), undefined);
});

test('parseCidr canonicalises', () => {
  assert.is(parseCidr('10.1.2.3/16')?.text, '10.1.0.0/16');
  assert.is(parseCidr('10.1.2.3')?.text, '10.1.2.3/32');
  assert.is(parseCidr('2001:DB8:0:0:1::/64')?.text, '2001:db8::/64');
  assert.is(parseCidr('::/0')?.text, '::/0');
  assert.is(parseCidr('::ffff:10.0.0.1/128')?.text, '::ffff:a00:1/128');
  for (const bad of ['10.0.0.0/33', '10.0.0/8', '1.2.3.4/-1', 'fe80::1%eth0/64', '10.0.0.0/ 8', '10.0.0.0/08']) assert.is(parseCidr(bad), undefined, bad);
});

test('contains and overlaps', () => {
  const net = parseCidr('10.20.0.0/16')!;
  assert.ok(cidrContains(net, '10.20.255.1'));
  assert.ok(cidrContains(net, '::ffff:10.20.0.9'));
  assert.not.ok(cidrContains(net, '10.21.0.1'));
  assert.not.ok(cidrContains(net, '2001:db8::1'));
  assert.ok(cidrsOverlap(net, parseCidr('10.20.5.0/24')!));
  assert.not.ok(cidrsOverlap(net, parseCidr('10.21.0.0/16')!));
  assert.ok(cidrsOverlap(parseCidr('0.0.0.0/0')!, net));
});

test.run();
