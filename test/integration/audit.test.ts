import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootstrapAdmin, startServer } from '../helpers/app.ts';

const s = await startServer();
const admin = await bootstrapAdmin(s);
const api = (method: string, path: string, body?: unknown, token = admin) => s.call(method, `/api/v1${path}`, { token, ...(body !== undefined && { body }) });
const tenant = (await api('POST', '/tenants', { name: 'Audited' })).body;
const T = `/tenants/${tenant.id}`;

test.after(async () => {
  await s.stop();
});

test('changes are recorded with actor, address, before and after; secrets masked', async () => {
  await api('POST', `${T}/devices`, { mac: '0004f2abab01', name: 'Old', lines: [{ index: 1, address: '1', authPassword: 'sip-pass-XYZ' }] });
  await api('PATCH', `${T}/devices/0004f2abab01`, { name: 'New', lines: [{ index: 1, address: '1', authPassword: 'sip-pass-ABC' }] });
  await api('DELETE', `${T}/devices/0004f2abab01`);
  const trail = (await api('GET', `${T}/audit`)).body;
  const actions = trail.items.map((e: any) => e.action);
  assert.equal(actions.slice(0, 3), ['deleteDevice', 'updateDevice', 'createDevice']);
  const upd = trail.items[1];
  assert.is(upd.actor, 'root@example.com');
  assert.is(upd.ip, '127.0.0.1');
  assert.is(upd.tenantId, tenant.id);
  assert.is(upd.before.name, 'Old');
  assert.is(upd.after.name, 'New');
  assert.is(trail.items[0].before.name, 'New');
  const dump = JSON.stringify(trail);
  assert.not.ok(dump.includes('sip-pass-XYZ') || dump.includes('sip-pass-ABC'), 'no secret in the trail');
  const filtered = (await api('GET', `${T}/audit?action=updateDevice`)).body;
  assert.is(filtered.total, 1);
});

test('sign-ins, successful and failed, are recorded; tenant creation is a system event', async () => {
  await s.call('POST', '/api/v1/auth/token', { body: { email: 'root@example.com', password: 'wrong password here' } });
  await s.call('POST', '/api/v1/auth/token', { body: { email: 'root@example.com', password: 'correct horse battery' } });
  const sys = (await api('GET', '/audit')).body;
  const actions = sys.items.map((e: any) => e.action);
  assert.ok(actions.includes('signIn'));
  assert.ok(actions.includes('signInFailed'));
  assert.ok(actions.includes('createTenant'));
  const failed = sys.items.find((e: any) => e.action === 'signInFailed');
  assert.is(failed.outcome, 'failure');
  assert.is(failed.actor, 'root@example.com');
  assert.not.ok(JSON.stringify(sys).includes('correct horse battery'));
});

test('tenant users see only their tenant trail; operators none; the table refuses edits', async () => {
  await api('POST', `${T}/users`, { email: 'ta@audited.test', role: 'tenant-admin', password: 'a long test password' });
  await api('POST', `${T}/users`, { email: 'op@audited.test', role: 'device-operator', password: 'a long test password' });
  const ta = (await s.call('POST', '/api/v1/auth/token', { body: { email: 'ta@audited.test', password: 'a long test password' } })).body.token;
  const op = (await s.call('POST', '/api/v1/auth/token', { body: { email: 'op@audited.test', password: 'a long test password' } })).body.token;
  assert.is((await api('GET', `${T}/audit`, undefined, ta)).status, 200);
  assert.is((await api('GET', '/audit', undefined, ta)).status, 403);
  assert.is((await api('GET', `${T}/audit`, undefined, op)).status, 403);
  const { default: Database } = await import('better-sqlite3');
  const raw = new Database(`${s.dataDir}/edgeprov.db`);
  assert.throws(() => raw.prepare('UPDATE audit_events SET actor = ?').run('x'), /append-only/);
  assert.throws(() => raw.prepare('DELETE FROM audit_events').run(), /append-only/);
  raw.close();
});

test.run();
