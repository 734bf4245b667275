import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/clock.ts';
import { DeviceAuthenticator, digestAuthorization, parseDigestParams, safeEqual } from '../../src/server/http/device-auth.ts';

const clock = new ManualClock('2026-06-01T00:00:00Z');
const auth = new DeviceAuthenticator({ clock, nonceTtlSeconds: 300 });
const cands = [{ username: 'prov', password: 'secret', who: 'tenant' as const }];

test('Digest SHA-256 and MD5 verify; nonces expire (stale) and counters cannot go back', () => {
  for (const ch of auth.challenges({ basic: false })) {
    const h = digestAuthorization(ch, { username: 'prov', password: 'secret', method: 'GET', uri: '/p/k/a.cfg' });
    assert.equal(auth.verify(h, 'GET', '/p/k/a.cfg', cands, false), { ok: true, who: 'tenant', username: 'prov' });
    assert.is(auth.verify(h, 'GET', '/p/k/a.cfg', cands, false).ok, false, 'replay');
    assert.is(auth.verify(h, 'HEAD', '/p/k/a.cfg', cands, false).ok, false, 'another method');
  }
  const ch = auth.challenges({ basic: false })[0]!;
  clock.advance(301_000);
  const late = digestAuthorization(ch, { username: 'prov', password: 'secret', method: 'GET', uri: '/x' });
  const r = auth.verify(late, 'GET', '/x', cands, false);
  assert.is(r.ok, false);
  assert.is((r as { stale?: boolean }).stale, true);
  assert.match(auth.challenges({ basic: false, stale: true })[0]!, /stale=true/);
});

test('Basic only where allowed; malformed headers are refusals, not errors', () => {
  const b = `Basic ${Buffer.from('prov:secret').toString('base64')}`;
  assert.is(auth.verify(b, 'GET', '/', cands, false).ok, false);
  assert.is(auth.verify(b, 'GET', '/', cands, true).ok, true);
  for (const bad of ['Digest', 'Digest username=', 'Digest a="b', 'Basic !!!', 'Bearer x', 'Digest ' + 'a=b,'.repeat(2000), 'Digest username="prov", username="x"']) {
    assert.is(auth.verify(bad, 'GET', '/', cands, true).ok, false, bad.slice(0, 30));
  }
  assert.is(parseDigestParams('a="b\\"c", d=e')?.get('a'), 'b"c');
});


test('credential comparison: equal only for the same characters, whatever the lengths', () => {
  assert.ok(safeEqual('', ''));
  assert.ok(safeEqual('pässwörd✓', 'pässwörd✓'));
  assert.not.ok(safeEqual('password', 'passwore'));
  assert.not.ok(safeEqual('password', 'password '));
  assert.not.ok(safeEqual('a', ''));
  // Characters whose low bits match must not compare equal.
  assert.not.ok(safeEqual('\u0141', 'A'));
  assert.not.ok(safeEqual('\u0100', '\u0000'));
});

test.run();
