import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootstrapAdmin, startServer } from '../helpers/app.ts';

const s = await startServer();
const admin = await bootstrapAdmin(s);

test.after(async () => {
  await s.stop();
});

test('health, readiness and the OpenAPI document are served', async () => {
  assert.equal((await s.call('GET', '/healthz')).body, { status: 'ok' });
  assert.equal((await s.call('GET', '/readyz')).body.status, 'ready');
  const doc = await s.call('GET', '/api/v1/openapi.json');
  assert.is(doc.status, 200);
  assert.is(doc.body.openapi, '3.1.0');
  assert.ok(doc.body.paths['/tenants/{tenantId}/devices']);
  const docs = await s.call('GET', '/api/v1/docs');
  assert.is(docs.status, 200);
  assert.match(String(docs.body), 'SwaggerUIBundle');
});

test('a tenant, a site with a subnet, a profile and a device are created and read back', async () => {
  const t = await s.call('POST', '/api/v1/tenants', { token: admin, body: { name: 'Acme Corp' } });
  assert.is(t.status, 201, JSON.stringify(t.body));
  assert.is(t.body.slug, 'acme-corp');
  assert.ok(t.body.provisioning.key.length >= 20);
  const tid = t.body.id;

  const site = await s.call('POST', `/api/v1/tenants/${tid}/sites`, {
    token: admin,
    body: { name: 'HQ', subnets: ['10.20.1.7/16'], timeZone: 'Europe/Berlin', sip: { server: 'pbx.acme.test', port: 5060, transport: 'UDPOnly' }, ntp: { server: 'ntp.acme.test' } },
  });
  assert.is(site.status, 201, JSON.stringify(site.body));
  assert.equal(site.body.subnets, ['10.20.0.0/16']);
  assert.is(site.body.deviceCount, 0);

  const profile = await s.call('POST', `/api/v1/tenants/${tid}/profiles`, {
    token: admin,
    body: { name: 'Base', params: { 'tcpIpApp.sntp.address': '{{site.ntp.server}}', 'prov.polling.enabled': '1' } },
  });
  assert.is(profile.status, 201, JSON.stringify(profile.body));

  const group = await s.call('POST', `/api/v1/tenants/${tid}/groups`, { token: admin, body: { name: 'Lobby', profileIds: [profile.body.id] } });
  assert.is(group.status, 201);

  const dev = await s.call('POST', `/api/v1/tenants/${tid}/devices`, {
    token: admin,
    body: {
      mac: '00:04:F2:AB:CD:EF',
      model: 'VVX500',
      name: 'Reception',
      siteId: site.body.id,
      groupIds: [group.body.id],
      labels: ['lobby'],
      lines: [{ index: 1, address: '1001', authUserId: '1001', authPassword: 's3cret-sip' }],
      params: { 'up.backlight.idleIntensity': '1' },
      profileIds: [profile.body.id],
    },
  });
  assert.is(dev.status, 201, JSON.stringify(dev.body));
  assert.is(dev.body.mac, '0004f2abcdef');
  assert.is(dev.body.state, 'active');
  assert.is(dev.body.lines[0].authPasswordSet, true);
  assert.not.ok('authPassword' in dev.body.lines[0], 'SIP passwords are never returned');

  for (const key of ['0004f2abcdef', '00-04-f2-ab-cd-ef', '00:04:F2:AB:CD:EF', dev.body.id]) {
    const got = await s.call('GET', `/api/v1/tenants/${tid}/devices/${encodeURIComponent(key)}`, { token: admin });
    assert.is(got.status, 200, key);
    assert.is(got.body.id, dev.body.id);
    assert.equal(got.body.groupIds, [group.body.id]);
    assert.equal(got.body.profileIds, [profile.body.id]);
  }

  const siteAgain = await s.call('GET', `/api/v1/tenants/${tid}/sites/${site.body.id}`, { token: admin });
  assert.is(siteAgain.body.deviceCount, 1);
  const groupAgain = await s.call('GET', `/api/v1/tenants/${tid}/groups/${group.body.id}`, { token: admin });
  assert.is(groupAgain.body.deviceCount, 1);

  // A line sent again without its password keeps it.
  const patched = await s.call('PATCH', `/api/v1/tenants/${tid}/devices/0004f2abcdef`, {
    token: admin,
    body: { name: 'Front desk', lines: [{ index: 1, address: '1001', label: 'Desk' }] },
  });
  assert.is(patched.status, 200, JSON.stringify(patched.body));
  assert.is(patched.body.name, 'Front desk');
  assert.is(patched.body.lines[0].authPasswordSet, true);
  const stored = await s.app.store.devices.getByMac(tid, '0004f2abcdef');
  assert.is(stored?.lines[0]?.authPassword, 's3cret-sip');

  // A site with devices cannot be deleted; an assigned profile cannot either.
  assert.is((await s.call('DELETE', `/api/v1/tenants/${tid}/sites/${site.body.id}`, { token: admin })).status, 409);
  assert.is((await s.call('DELETE', `/api/v1/tenants/${tid}/profiles/${profile.body.id}`, { token: admin })).status, 409);
});

test('device lists paginate and filter by site, group, model, state, MAC prefix, label and last seen', async () => {
  const t = (await s.call('POST', '/api/v1/tenants', { token: admin, body: { name: 'Filters' } })).body;
  const base = `/api/v1/tenants/${t.id}`;
  const siteA = (await s.call('POST', `${base}/sites`, { token: admin, body: { name: 'A' } })).body;
  const group = (await s.call('POST', `${base}/groups`, { token: admin, body: { name: 'G' } })).body;
  const items = Array.from({ length: 12 }, (_, i) => ({
    op: 'create',
    device: {
      mac: `64167f0000${i.toString(16).padStart(2, '0')}`,
      model: i % 2 ? 'VVX400' : 'VVX500',
      ...(i < 5 && { siteId: siteA.id }),
      ...(i < 3 && { groupIds: [group.id] }),
      ...(i === 7 && { state: 'disabled' }),
      ...(i === 4 && { labels: ['vip'] }),
    },
  }));
  items.push({ op: 'create', device: { mac: '0004f2000001', model: 'SPIP550' } });
  const bulk = await s.call('POST', `${base}/devices/bulk`, { token: admin, body: { items } });
  assert.is(bulk.status, 200, JSON.stringify(bulk.body));
  const seen = await s.app.store.devices.getByMac(t.id, '64167f000001');
  await s.app.store.devices.recordSeen([{ tenantId: t.id, id: seen!.id, lastSeen: { at: '2026-03-01T10:00:00.000Z', ip: '10.0.0.5', userAgent: 'x', firmware: '5.9.7' } }]);

  const q = async (qs: string) => (await s.call('GET', `${base}/devices?${qs}`, { token: admin })).body;
  const page1 = await q('limit=5');
  assert.is(page1.total, 13);
  assert.is(page1.items.length, 5);
  const page3 = await q('limit=5&offset=10');
  assert.is(page3.items.length, 3);
  assert.is((await q(`siteId=${siteA.id}`)).total, 5);
  assert.is((await q(`groupId=${group.id}`)).total, 3);
  assert.is((await q('model=vvx400')).total, 6);
  assert.is((await q('state=disabled')).total, 1);
  assert.is((await q('macPrefix=64:16:7F')).total, 12);
  assert.is((await q('macPrefix=0004f2')).total, 1);
  assert.is((await q('label=vip')).total, 1);
  assert.is((await q('seenSince=2026-02-01T00:00:00Z')).total, 1);
  assert.is((await q('seenBefore=2026-02-01T00:00:00Z')).total, 0);
  assert.is((await q('neverSeen=true')).total, 12);
  const bad = await s.call('GET', `${base}/devices?macPrefix=zz&limit=100000`, { token: admin });
  assert.is(bad.status, 400);
  assert.ok(bad.body.error.details.some((d: any) => d.path === 'macPrefix'));
  assert.ok(bad.body.error.details.some((d: any) => d.path === 'limit'));
});

test('bulk dry-run reports each item and changes nothing; a failing batch applies nothing', async () => {
  const t = (await s.call('POST', '/api/v1/tenants', { token: admin, body: { name: 'Bulk' } })).body;
  const base = `/api/v1/tenants/${t.id}`;
  const existing = await s.call('POST', `${base}/devices`, { token: admin, body: { mac: '482567000001' } });
  assert.is(existing.status, 201);
  const items = [
    { op: 'create', device: { mac: '482567000002', name: 'ok' } },
    { op: 'create', device: { mac: 'nonsense' } },
    { op: 'create', device: { mac: '48:25:67:00:00:01' } },
    { op: 'create', device: { mac: '482567000003', siteId: 'no-such-site' } },
    { op: 'update', idOrMac: '482567000001', device: { name: 'renamed' } },
    { op: 'update', idOrMac: '482567009999', device: { name: 'ghost' } },
    { op: 'create', device: { mac: '482567000002' } },
  ];
  const dry = await s.call('POST', `${base}/devices/bulk`, { token: admin, body: { dryRun: true, items } });
  assert.is(dry.status, 200, JSON.stringify(dry.body));
  assert.is(dry.body.applied, false);
  assert.equal(
    dry.body.results.map((r: any) => r.ok),
    [true, false, false, false, true, false, false],
  );
  assert.ok(dry.body.results[1].errors.some((e: any) => e.path === 'device.mac'));
  assert.ok(dry.body.results[3].errors.some((e: any) => e.path === 'siteId'));
  const after = await s.call('GET', `${base}/devices`, { token: admin });
  assert.is(after.body.total, 1, 'dry run changed nothing');

  const real = await s.call('POST', `${base}/devices/bulk`, { token: admin, body: { items } });
  assert.is(real.status, 422);
  assert.is(real.body.applied, false);
  const still = await s.call('GET', `${base}/devices/482567000001`, { token: admin });
  assert.is(still.body.name, '', 'the good update was rolled back with the rest');
  assert.is((await s.call('GET', `${base}/devices`, { token: admin })).body.total, 1);

  const good = await s.call('POST', `${base}/devices/bulk`, { token: admin, body: { items: [items[0], items[4]] } });
  assert.is(good.status, 200);
  assert.is(good.body.applied, true);
  assert.is((await s.call('GET', `${base}/devices`, { token: admin })).body.total, 2);
});

test('API tokens work for automation, are shown once, and can be revoked', async () => {
  const t = (await s.call('POST', '/api/v1/tenants', { token: admin, body: { name: 'Tokens' } })).body;
  const created = await s.call('POST', `/api/v1/tenants/${t.id}/users`, {
    token: admin,
    body: { email: 'ops@tokens.test', role: 'device-admin', password: 'long enough password' },
  });
  assert.is(created.status, 201, JSON.stringify(created.body));
  const session = (await s.call('POST', '/api/v1/auth/token', { body: { email: 'ops@tokens.test', password: 'long enough password' } })).body;
  assert.ok(session.expiresAt);
  const tok = await s.call('POST', `/api/v1/tenants/${t.id}/tokens`, { token: session.token, body: { name: 'ci', expiresInDays: 30 } });
  assert.is(tok.status, 201);
  assert.match(tok.body.token, /^ept_/);
  const list = await s.call('GET', `/api/v1/tenants/${t.id}/tokens`, { token: tok.body.token });
  assert.is(list.status, 200);
  assert.is(list.body.items.length, 1);
  assert.not.ok(JSON.stringify(list.body).includes(tok.body.token), 'the secret is never listed');
  assert.is((await s.call('GET', `/api/v1/tenants/${t.id}/devices`, { token: tok.body.token })).status, 200);
  assert.is((await s.call('DELETE', `/api/v1/tenants/${t.id}/tokens/${tok.body.info.id}`, { token: session.token })).status, 204);
  assert.is((await s.call('GET', `/api/v1/tenants/${t.id}/devices`, { token: tok.body.token })).status, 401);

  // A new password ends the user's sessions.
  await s.call('PATCH', `/api/v1/tenants/${t.id}/users/${created.body.id}`, { token: admin, body: { password: 'another long password' } });
  assert.is((await s.call('GET', '/api/v1/me', { token: session.token })).status, 401);
  const out = await s.call('POST', '/api/v1/auth/token', { body: { email: 'ops@tokens.test', password: 'another long password' } });
  assert.is(out.status, 200);
  assert.is((await s.call('DELETE', '/api/v1/auth/token', { token: out.body.token })).status, 204);
  assert.is((await s.call('GET', '/api/v1/me', { token: out.body.token })).status, 401);
});

test('sign-in failures: one message for unknown and wrong, then a lockout with Retry-After', async () => {
  const wrong = await s.call('POST', '/api/v1/auth/token', { body: { email: 'root@example.com', password: 'nope' } });
  const unknown = await s.call('POST', '/api/v1/auth/token', { body: { email: 'nobody@example.com', password: 'nope' } });
  assert.is(wrong.status, 401);
  assert.is(unknown.status, 401);
  assert.is(wrong.body.error.message, unknown.body.error.message);
  let last = wrong;
  for (let i = 0; i < 11; i++) last = await s.call('POST', '/api/v1/auth/token', { body: { email: 'root@example.com', password: 'nope' } });
  assert.is(last.status, 429);
  assert.ok(Number(last.headers.get('retry-after')) > 0);
  assert.match(last.body.error.message, /too many failed sign-ins/);
  const right = await s.call('POST', '/api/v1/auth/token', { body: { email: 'root@example.com', password: 'correct horse battery' } });
  assert.is(right.status, 429, 'a locked account refuses even the right password until the window ends');
});

test.run();
