import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootstrapAdmin, startServer, type TestServer } from '../helpers/app.ts';
import { fillPath, operations, tenantWithUser } from '../helpers/tenants.ts';

const s = await startServer();
const admin = await bootstrapAdmin(s);
const ops = await operations(s);

test.after(async () => {
  await s.stop();
});

/** A tenant with one of everything, owned by a tenant admin. */
async function populated(srv: TestServer, mac: string) {
  const { tenantId, token, userId } = await tenantWithUser(srv, admin, 'tenant-admin');
  const b = `/api/v1/tenants/${tenantId}`;
  const site = (await srv.call('POST', `${b}/sites`, { token, body: { name: 'Site', subnets: ['10.9.0.0/24'] } })).body;
  const group = (await srv.call('POST', `${b}/groups`, { token, body: { name: 'Group' } })).body;
  const profile = (await srv.call('POST', `${b}/profiles`, { token, body: { name: 'Profile', params: { 'a.b': '1' } } })).body;
  const device = (await srv.call('POST', `${b}/devices`, { token, body: { mac, siteId: site.id, groupIds: [group.id], profileIds: [profile.id] } })).body;
  const apiToken = (await srv.call('POST', `${b}/tokens`, { token, body: { name: 'automation' } })).body;
  const operator = await srv.call('POST', `${b}/users`, { token, body: { email: `op-${mac}@x.test`, role: 'device-operator', password: 'a long test password' } });
  const opToken = (await srv.call('POST', '/api/v1/auth/token', { body: { email: `op-${mac}@x.test`, password: 'a long test password' } })).body.token;
  return {
    tenantId,
    token,
    opToken,
    ids: { tenantId, siteId: site.id, groupId: group.id, profileId: profile.id, idOrMac: device.id, userId: userId!, tokenId: apiToken.info.id },
    mac,
    operatorId: operator.body.id,
  };
}

const A = await populated(s, '0004f2aaaaaa');
const B = await populated(s, '0004f2bbbbbb');

async function snapshot(t: typeof B) {
  const b = `/api/v1/tenants/${t.tenantId}`;
  const out: Record<string, unknown> = {};
  for (const part of ['', '/sites', '/groups', '/profiles', '/devices', '/users', '/tokens']) {
    out[part] = (await s.call('GET', b + part, { token: t.token })).body;
  }
  return out;
}

test('every operation with tenant B in the path answers 404 to tenant A, for admin and operator alike', async () => {
  const before = await snapshot(B);
  const failures: string[] = [];
  for (const op of ops.filter((o) => o.path.includes('{tenantId}'))) {
    for (const token of [A.token, A.opToken]) {
      const r = await s.call(op.method, '/api/v1' + fillPath(op.path, B.ids), { token, ...(op.hasBody && { body: {} }) });
      if (r.status !== 404) failures.push(`${op.method} ${op.path}: ${r.status}`);
      else if (r.body.error.code !== 'not_found') failures.push(`${op.method} ${op.path}: code ${r.body.error.code}`);
    }
  }
  assert.equal(failures, []);
  assert.equal(await snapshot(B), before, 'nothing of B changed');
});

test("tenant B's ids under tenant A's own path answer 404 for every item operation", async () => {
  const before = await snapshot(B);
  const failures: string[] = [];
  const itemOps = ops.filter((o) => /\{tenantId\}\/\w+\/\{\w+\}/.test(o.path));
  assert.ok(itemOps.length >= 16);
  for (const op of itemOps) {
    const r = await s.call(op.method, '/api/v1' + fillPath(op.path, { ...B.ids, tenantId: A.tenantId }), { token: A.token, ...(op.hasBody && { body: {} }) });
    if (r.status !== 404) failures.push(`${op.method} ${op.path}: ${r.status}`);
  }
  // A device is addressable by MAC too: B's MAC is unknown in A.
  const byMac = await s.call('GET', `/api/v1/tenants/${A.tenantId}/devices/${B.mac}`, { token: A.token });
  if (byMac.status !== 404) failures.push(`device by MAC: ${byMac.status}`);
  assert.equal(failures, []);
  assert.equal(await snapshot(B), before);
});

test("lists never show another tenant's data; references to it are rejected", async () => {
  const dump = JSON.stringify(await snapshot(A));
  for (const v of Object.values(B.ids)) assert.not.ok(dump.includes(v), `A sees ${v} of B`);
  assert.not.ok(dump.includes(B.mac));
  const tenants = await s.call('GET', '/api/v1/tenants', { token: A.token });
  assert.equal(tenants.body.items.map((t: any) => t.id), [A.tenantId]);

  const r = await s.call('POST', `/api/v1/tenants/${A.tenantId}/devices`, {
    token: A.token,
    body: { mac: '0004f2cccccc', siteId: B.ids.siteId, groupIds: [B.ids.groupId], profileIds: [B.ids.profileId] },
  });
  assert.is(r.status, 400);
  assert.equal(r.body.error.details.map((d: any) => d.path).sort(), ['groupIds.0', 'profileIds.0', 'siteId']);
  const p = await s.call('PATCH', `/api/v1/tenants/${A.tenantId}`, { token: A.token, body: { profileIds: [B.ids.profileId] } });
  assert.is(p.status, 400);
});

test("a system administrator's token limited to tenant A cannot reach tenant B", async () => {
  const scoped = (await s.call('POST', `/api/v1/tenants/${A.tenantId}/tokens`, { token: admin, body: { name: 'scoped' } })).body.token;
  assert.is((await s.call('GET', `/api/v1/tenants/${A.tenantId}/devices`, { token: scoped })).status, 200);
  assert.is((await s.call('GET', `/api/v1/tenants/${B.tenantId}/devices`, { token: scoped })).status, 404);
  assert.is((await s.call('POST', '/api/v1/tenants', { token: scoped, body: { name: 'nope' } })).status, 403);
  const list = await s.call('GET', '/api/v1/tenants', { token: scoped });
  assert.equal(list.body.items.map((t: any) => t.id), [A.tenantId]);
});

test('MACs are unique across the server: a duplicate in another tenant is a 409 that names no tenant', async () => {
  const r = await s.call('POST', `/api/v1/tenants/${A.tenantId}/devices`, { token: A.token, body: { mac: B.mac.toUpperCase() } });
  assert.is(r.status, 409);
  assert.not.ok(JSON.stringify(r.body).includes(B.tenantId));
});

test.run();
