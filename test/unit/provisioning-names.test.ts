import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseName, safeRelativePath } from '../../src/provisioning/names.ts';
import { parseUserAgent } from '../../src/provisioning/useragent.ts';

test('safeRelativePath refuses traversal, separators, NUL, doubled slashes and overlong names', () => {
  for (const bad of ['..', '.', '../x', 'a/../b', '%2e%2e/x', '%2E%2E', 'a%2fb', 'a%2Fb', 'a%5cb', 'a\\b', 'x%00', 'x\u0000', 'a//b', '/a', 'a/', '%', '%zz', 'a/b/c/d/e', 'x'.repeat(256), '\u001b[31m']) {
    assert.is(safeRelativePath(bad), undefined, JSON.stringify(bad));
  }
  assert.is(safeRelativePath('foo..bar.cfg'), 'foo..bar.cfg', 'dots inside a name are fine');
  assert.is(safeRelativePath('logs/0004f2abcdef-app.log'), 'logs/0004f2abcdef-app.log');
  assert.is(safeRelativePath('0004F2ABCDEF.cfg'), '0004F2ABCDEF.cfg');
  assert.is(safeRelativePath('a%20b.cfg'), 'a b.cfg');
});

test('parseName knows the firmware names: fw/<version>/<part>.sip.ld, sip.ld, the prefixed form, the root form', () => {
  assert.equal(parseName('fw/6.4.3.5018/3111-48500-001.sip.ld'), { kind: 'firmware', version: '6.4.3.5018', part: '3111-48500-001' });
  assert.equal(parseName('fw/6.4.3.5018/sip.ld'), { kind: 'firmware', version: '6.4.3.5018', part: null });
  assert.equal(parseName('3111-48500-001.fw/6.4.3.5018/sip.ld'), { kind: 'firmware', version: '6.4.3.5018', part: '3111-48500-001' });
  assert.equal(parseName('3111-48500-001.sip.ld'), { kind: 'firmware', version: null, part: '3111-48500-001' });
  for (const bad of ['fw/6.4.3.5018/evil.sh', 'fw/x;y/sip.ld', 'fw/6.4.3/3111-1-1.sip.ld', 'sip.ld', 'xx/6.4.3/sip.ld', 'fw/6.4.3/a/sip.ld']) {
    assert.is(parseName(bad), undefined, bad);
  }
});

test('parseName knows exactly the names of the tree', () => {
  assert.equal(parseName('0004f2abcdef.cfg'), { kind: 'master', mac: '0004f2abcdef' });
  assert.equal(parseName('0004F2ABCDEF.cfg'), { kind: 'master', mac: '0004f2abcdef' });
  assert.equal(parseName('000000000000.cfg'), { kind: 'default-master' });
  assert.equal(parseName('0004f2abcdef-device.cfg'), { kind: 'device-config', mac: '0004f2abcdef' });
  assert.equal(parseName('logs/0004f2abcdef-app.log'), { kind: 'phone-file', mac: '0004f2abcdef', file: 'app.log' });
  assert.equal(parseName('0004f2abcdef-app.log'), { kind: 'phone-file', mac: '0004f2abcdef', file: 'app.log' });
  assert.equal(parseName('overrides/0004f2abcdef-phone.cfg'), { kind: 'phone-file', mac: '0004f2abcdef', file: 'phone.cfg' });
  assert.equal(parseName('contacts/0004f2abcdef-directory.xml'), { kind: 'phone-file', mac: '0004f2abcdef', file: 'directory.xml' });
  assert.equal(parseName('0004f2abcdef-license.cfg'), { kind: 'optional', mac: '0004f2abcdef', name: '0004f2abcdef-license.cfg' });
  assert.equal(parseName('defaults.cfg'), { kind: 'defaults' });
  for (const bad of ['logs/0004f2abcdef-phone.cfg', 'overrides/0004f2abcdef.cfg', 'logsx/0004f2abcdef-app.log', '00-04-f2-ab-cd-ef.cfg', '0004f2abcdef', '0004f2abcdef.xml', '0004f2abcdef-evil.cfg', '000000000000-device.cfg', 'foo..bar.cfg', 'logs/defaults.cfg', 'a/b/0004f2abcdef.cfg']) {
    assert.is(parseName(bad), undefined, bad);
  }
});

test('User-Agents: every documented shape, unknown families, garbage', () => {
  assert.equal(parseUserAgent('FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/Application'), { family: 'VVX', model: 'VVX500', firmware: '5.9.7.4477', stage: 'application', mac: null, microbrowser: false });
  assert.equal(parseUserAgent('FileTransport PolycomSoundPointIP-SPIP_550-UA/4.0.15.1047 (SN:0004a11a1a1a) Type/Application'), { family: 'SoundPointIP', model: 'SPIP550', firmware: '4.0.15.1047', stage: 'application', mac: '0004a11a1a1a', microbrowser: false });
  assert.is(parseUserAgent('FileTransport PolycomSoundStationIP-SSIP_6000-UA/5.0.3.1667 Type/Updater').stage, 'updater');
  assert.is(parseUserAgent('FileTransport PolycomTrio-Trio_8800-UA/7.2.4.0123').model, 'Trio8800');
  assert.is(parseUserAgent('Microbrowser/3.0').microbrowser, true);
  for (const g of ['', 'curl/8.0', 'x'.repeat(100_000), 'FileTransport Polycom-', '\u0000\u00ff']) assert.is(parseUserAgent(g).model, null);
});

test('parsed User-Agents are kept and shared, so they are frozen; more than 1,000 distinct ones do not grow the cache', () => {
  const ua = 'FileTransport PolycomVVX-VVX_411-UA/6.4.3.5018 Type/Application';
  const a = parseUserAgent(ua);
  assert.is(parseUserAgent(ua), a);
  assert.ok(Object.isFrozen(a));
  assert.throws(() => {
    'use strict';
    (a as { model: string | null }).model = 'tampered';
  });
  for (let i = 0; i < 2500; i++) assert.is(parseUserAgent(`FileTransport PolycomVVX-VVX_411-UA/6.4.${i}.1`).firmware, `6.4.${i}.1`);
  assert.is(parseUserAgent(ua).model, 'VVX411');
});

test.run();
