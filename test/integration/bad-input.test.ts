import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootstrapAdmin, startServer } from '../helpers/app.ts';

const s = await startServer({ 'api-max-body-bytes': '4096' });
const admin = await bootstrapAdmin(s);
const tenant = (await s.call('POST', '/api/v1/tenants', { token: admin, body: { name: 'Bad Input' } })).body;
const base = `/api/v1/tenants/${tenant.id}`;

test.after(async () => {
  await s.stop();
});

const count = async (what: string) => (await s.call('GET', `${base}/${what}`, { token: admin })).body.total as number;

test('MACs: the three accepted spellings are stored lowercase; anything else is a field error', async () => {
  for (const [mac, canonical] of [
    ['00:04:F2:AB:CD:01', '0004f2abcd01'],
    ['00-04-f2-ab-cd-02', '0004f2abcd02'],
    ['0004F2ABCD03', '0004f2abcd03'],
  ]) {
    const r = await s.call('POST', `${base}/devices`, { token: admin, body: { mac } });
    assert.is(r.status, 201, mac);
    assert.is(r.body.mac, canonical);
  }
  for (const mac of ['0004f2abcd0', '0004f2abcd0g', '00:04:f2-ab:cd:04', '0004.f2ab.cd04', '00:04:f2:ab:cd', ' ', '00:04:f2:ab:cd:04:05', 'x'.repeat(1000)]) {
    const r = await s.call('POST', `${base}/devices`, { token: admin, body: { mac } });
    assert.is(r.status, 400, mac);
    assert.is(r.body.error.code, 'validation_failed');
    assert.is(r.body.error.details[0].path, 'mac');
  }
  assert.is(await count('devices'), 3);
});

test('duplicate MAC (any spelling) is 409 and changes nothing', async () => {
  const r = await s.call('POST', `${base}/devices`, { token: admin, body: { mac: '00-04-F2-AB-CD-01', name: 'dup' } });
  assert.is(r.status, 409);
  assert.is(r.body.error.code, 'conflict');
  assert.is(await count('devices'), 3);
});

test('invalid CIDRs are field errors; overlapping subnets conflict', async () => {
  for (const cidr of ['10.0.0.0/33', '300.1.1.1/8', '10.0.0/24', 'fe80::/129', 'banana', '10.0.0.0/08', '']) {
    const r = await s.call('POST', `${base}/sites`, { token: admin, body: { name: `bad ${cidr}`, subnets: [cidr] } });
    assert.is(r.status, 400, cidr);
    assert.is(r.body.error.details[0].path, 'subnets.0');
  }
  const ok = await s.call('POST', `${base}/sites`, { token: admin, body: { name: 'Net', subnets: ['192.168.10.0/24', '2001:db8:0:0::/64'] } });
  assert.is(ok.status, 201);
  assert.equal(ok.body.subnets, ['192.168.10.0/24', '2001:db8::/64']);
  const overlap = await s.call('POST', `${base}/sites`, { token: admin, body: { name: 'Other', subnets: ['192.168.0.0/16'] } });
  assert.is(overlap.status, 409);
  assert.match(overlap.body.error.details[0].message, /overlaps 192\.168\.10\.0\/24/);
  const selfOverlap = await s.call('POST', `${base}/sites`, { token: admin, body: { name: 'Self', subnets: ['10.1.0.0/16', '10.1.2.0/24'] } });
  assert.is(selfOverlap.status, 400);
  assert.is(await count('sites'), 1);
});

test('duplicate names of sites, groups and profiles are 409, case-insensitively', async () => {
  for (const what of ['sites', 'groups', 'profiles']) {
    assert.is((await s.call('POST', `${base}/${what}`, { token: admin, body: { name: `Dup ${what}` } })).status, 201);
    const r = await s.call('POST', `${base}/${what}`, { token: admin, body: { name: `dup ${what.toUpperCase()}` } });
    assert.is(r.status, 409, what);
    assert.is(r.body.error.details[0].path, 'name');
  }
});

test('unknown fields and wrong types are rejected with per-field details', async () => {
  const unknown = await s.call('POST', `${base}/devices`, { token: admin, body: { mac: '0004f2abcd09', colour: 'red' } });
  assert.is(unknown.status, 400);
  assert.match(JSON.stringify(unknown.body.error.details), /colour/);
  const types = await s.call('POST', `${base}/devices`, {
    token: admin,
    body: { mac: 12, name: ['x'], lines: [{ index: 0, address: '' }], state: 'broken', params: { 'bad name!': 'x' } },
  });
  assert.is(types.status, 400);
  const paths = types.body.error.details.map((d: any) => d.path);
  for (const p of ['mac', 'name', 'lines.0.index', 'lines.0.address', 'state', 'params.bad name!']) assert.ok(paths.includes(p), `${p} in ${paths}`);
  const tz = await s.call('POST', `${base}/sites`, { token: admin, body: { name: 'TZ', timeZone: 'Mars/Olympus' } });
  assert.is(tz.status, 400);
  assert.is(tz.body.error.details[0].path, 'timeZone');
  const lines = await s.call('POST', `${base}/devices`, { token: admin, body: { mac: '0004f2abcd0a', lines: [{ index: 1, address: 'a' }, { index: 1, address: 'b' }] } });
  assert.is(lines.status, 400);
  assert.is(await count('devices'), 3);
});

test('malformed JSON is 400, a non-JSON body 415, an oversize body 413; none changes anything', async () => {
  const malformed = await s.call('POST', `${base}/devices`, { token: admin, raw: '{"mac": "0004f2abcd0b",', headers: { 'content-type': 'application/json' } });
  assert.is(malformed.status, 400);
  assert.is(malformed.body.error.code, 'bad_request');
  assert.match(malformed.body.error.message, /malformed JSON/);
  assert.ok(malformed.body.error.requestId);
  const text = await s.call('POST', `${base}/devices`, { token: admin, raw: 'mac=0004f2abcd0b', headers: { 'content-type': 'text/plain' } });
  assert.is(text.status, 415);
  assert.is(text.body.error.code, 'unsupported_media_type');
  const big = await s.call('POST', `${base}/devices`, { token: admin, body: { mac: '0004f2abcd0c', name: 'x'.repeat(10_000) } });
  assert.is(big.status, 413);
  assert.is(big.body.error.code, 'payload_too_large');
  assert.is(await count('devices'), 3);
});

test('unknown ids and routes are 404 in the one error shape; request ids echo', async () => {
  const r = await s.call('GET', `${base}/devices/00000000-0000-0000-0000-000000000000`, { token: admin, headers: { 'x-request-id': 'trace-123' } });
  assert.is(r.status, 404);
  assert.equal(Object.keys(r.body.error).sort(), ['code', 'message', 'requestId']);
  assert.is(r.body.error.requestId, 'trace-123');
  assert.is(r.headers.get('x-request-id'), 'trace-123');
  for (const p of [`${base}/sites/nope`, `${base}/groups/nope`, `${base}/profiles/nope`, `${base}/users/nope`, '/api/v1/tenants/nope', '/api/v1/nothing-here']) {
    const x = await s.call('GET', p, { token: admin });
    assert.is(x.status, 404, p);
    assert.is(x.body.error.code, 'not_found');
  }
  const badId = await s.call('GET', `${base}/devices/${'x'.repeat(200)}`, { token: admin });
  assert.is(badId.status, 400);
});

test('weak passwords, bad emails and duplicate users are refused', async () => {
  const weak = await s.call('POST', `${base}/users`, { token: admin, body: { email: 'a@b.test', role: 'device-admin', password: 'short' } });
  assert.is(weak.status, 400);
  assert.is(weak.body.error.details[0].path, 'password');
  const email = await s.call('POST', `${base}/users`, { token: admin, body: { email: 'not-an-email', role: 'device-admin', password: 'a long test password' } });
  assert.is(email.status, 400);
  assert.is((await s.call('POST', `${base}/users`, { token: admin, body: { email: 'A@B.test', role: 'device-admin', password: 'a long test password' } })).status, 201);
  assert.is((await s.call('POST', `${base}/users`, { token: admin, body: { email: 'a@b.TEST', role: 'device-operator', password: 'a long test password' } })).status, 409);
});

test.run();
