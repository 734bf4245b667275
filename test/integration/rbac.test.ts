import { randomUUID } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PERMISSIONS, ROLES, can, type Permission } from '../../src/domain/roles.ts';
import { bootstrapAdmin, startServer } from '../helpers/app.ts';
import { fillPath, operations, tenantWithUser } from '../helpers/tenants.ts';

const s = await startServer();
const admin = await bootstrapAdmin(s);
const ops = await operations(s);

test.after(async () => {
  await s.stop();
});

test('every operation of the OpenAPI document names a known permission', () => {
  assert.ok(ops.length >= 35, `only ${ops.length} operations`);
  for (const op of ops) {
    assert.ok(op.operationId, `${op.method} ${op.path} has no operationId`);
    assert.ok(
      op.permission === 'public' || op.permission === 'authenticated' || (PERMISSIONS as readonly string[]).includes(op.permission),
      `${op.method} ${op.path} has no rule (x-edgeprov-permission = ${op.permission})`,
    );
  }
});

test('every operation, every role: allowed or denied exactly as the role table says', async () => {
  const failures: string[] = [];
  for (const op of ops) {
    if (op.permission === 'public') continue;
    for (const role of ROLES) {
      // A fresh tenant per call keeps destructive operations from disturbing the next one.
      const { tenantId, token } = await tenantWithUser(s, admin, role);
      const callToken = role === 'system-admin' ? (await s.call('POST', '/api/v1/auth/token', { body: { email: 'root@example.com', password: 'correct horse battery' } })).body.token : token;
      const path = '/api/v1' + fillPath(op.path, { tenantId, siteId: randomUUID(), groupId: randomUUID(), idOrMac: randomUUID(), profileId: randomUUID(), userId: randomUUID(), tokenId: randomUUID() });
      const r = await s.call(op.method, path, { token: callToken, ...(op.hasBody && { body: {} }) });
      const allowed = op.permission === 'authenticated' || can(role, op.permission as Permission);
      if (allowed && (r.status === 403 || r.status === 401)) failures.push(`${role} ${op.method} ${op.path}: expected allowed, got ${r.status}`);
      if (!allowed && r.status !== 403) failures.push(`${role} ${op.method} ${op.path}: expected 403, got ${r.status}`);
      if (r.status >= 500) failures.push(`${role} ${op.method} ${op.path}: ${r.status}`);
    }
  }
  assert.equal(failures, []);
});

test('without a token every non-public operation answers 401 with a Bearer challenge', async () => {
  for (const op of ops) {
    if (op.permission === 'public') continue;
    const path = '/api/v1' + fillPath(op.path, {});
    const r = await s.call(op.method, path, op.hasBody ? { body: {} } : {});
    assert.is(r.status, 401, `${op.method} ${op.path}`);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.is(r.body.error.code, 'unauthorized');
  }
  const forged = await s.call('GET', '/api/v1/tenants', { token: 'eps_' + 'A'.repeat(43) });
  assert.is(forged.status, 401);
});

test('a device-operator reads but cannot write', async () => {
  const { tenantId, token } = await tenantWithUser(s, admin, 'device-operator');
  assert.is((await s.call('GET', `/api/v1/tenants/${tenantId}/devices`, { token })).status, 200);
  const w = await s.call('POST', `/api/v1/tenants/${tenantId}/devices`, { token, body: { mac: '0004f2000099' } });
  assert.is(w.status, 403);
  assert.is(w.body.error.code, 'forbidden');
  assert.is((await s.call('GET', `/api/v1/tenants/${tenantId}/devices`, { token })).body.total, 0);
});

test('a tenant admin cannot grant system-admin, a device-admin cannot manage users', async () => {
  const ta = await tenantWithUser(s, admin, 'tenant-admin');
  const r = await s.call('POST', `/api/v1/tenants/${ta.tenantId}/users`, { token: ta.token, body: { email: 'x@y.test', role: 'system-admin', password: 'a long test password' } });
  assert.is(r.status, 400);
  assert.is(r.body.error.details[0].path, 'role');
  const self = await s.call('PATCH', `/api/v1/tenants/${ta.tenantId}/users/${ta.userId}`, { token: ta.token, body: { role: 'device-operator' } });
  assert.is(self.status, 409);
});

test('the README role table matches the code', async () => {
  const { readFile } = await import('node:fs/promises');
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  for (const perm of PERMISSIONS) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${perm}\``));
    assert.ok(row, `README has no row for ${perm}`);
    const cells = row!.split('|').slice(2, 2 + ROLES.length).map((c) => c.trim());
    ROLES.forEach((role, i) => assert.is(cells[i] === '✓', can(role, perm), `README ${perm} / ${role}`));
  }
});

test.run();
