import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PhoneClient } from '../../src/sim/phone.ts';
import { bootstrapAdmin, startServer } from '../helpers/app.ts';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const s = await startServer();
const admin = await bootstrapAdmin(s);
const api = (method: string, path: string, body?: unknown) => s.call(method, `/api/v1${path}`, { token: admin, ...(body !== undefined && { body }) });
const tenant = (await api('POST', '/tenants', { name: 'Vault' })).body;
const T = `/tenants/${tenant.id}`;
const SIP = 'sip-Secret-4711-zz';
const OWN = 'device-Own-Secret-0815';
const ADMIN_PW = 'phone-Admin-Secret-2468';
const USER_PW = 'phone-User-Secret-1357';
const profile = (await api('POST', `${T}/profiles`, { name: 'Locked', params: { 'device.auth.localAdminPassword': ADMIN_PW, 'device.set': '1' } })).body;
await api('POST', `${T}/devices`, {
  mac: '0004f2c0ffee',
  lines: [{ index: 1, address: '1001', authPassword: SIP }],
  credentials: { username: 'phone-c0ffee', password: OWN },
  params: { 'device.auth.localUserPassword': USER_PW },
  profileIds: [profile.id],
});
const prov = (await api('GET', `${T}/provisioning`)).body;
// A phone fetch stores the last good render (which carries the SIP password) in the database.
const r = await new PhoneClient({ base: prov.httpBase, mac: '0004f2c0ffee', username: prov.username, password: prov.password }).fetch('GET', '0004f2c0ffee-device.cfg');
assert.ok(r.body.toString().includes(SIP));
assert.ok(r.body.toString().includes(ADMIN_PW), 'phone admin password reaches the phone');

test.after(async () => {
  await s.stop().catch(() => undefined);
});

function rawFiles(): Buffer {
  const db = join(s.dataDir, 'edgeprov.db');
  return Buffer.concat([db, `${db}-wal`, `${db}-shm`].filter(existsSync).map((f) => readFileSync(f)));
}

test('no secret is in clear in the raw database file or its WAL', () => {
  const raw = rawFiles();
  for (const secret of [SIP, OWN, prov.password, ADMIN_PW, USER_PW]) assert.is(raw.indexOf(Buffer.from(secret)), -1, `${secret} found in the database`);
  assert.ok(raw.includes(Buffer.from('enc:v1:')));
  const key = join(s.dataDir, 'master.key');
  assert.is(statSync(key).mode & 0o777, 0o600);
});

test('rotate-key re-seals everything under a new key; the data still reads back', async () => {
  const key = join(s.dataDir, 'master.key');
  const before = readFileSync(key, 'utf8');
  await s.app.close();
  const out = await run('npx', ['edgeprov', 'rotate-key', '--data-dir', s.dataDir, '--https-enabled', 'false'], { cwd: root });
  assert.match(out.stdout, /re-sealed \d+ secret\(s\)/);
  assert.is.not(readFileSync(key, 'utf8'), before);
  assert.not.ok(existsSync(`${key}.next`));
  const { createApp } = await import('../../src/app.ts');
  const { loadConfig } = await import('../../src/config.ts');
  const { silentLogger } = await import('../../src/logger.ts');
  const again = await createApp({ config: loadConfig({ env: {}, flags: { 'data-dir': s.dataDir, 'https-enabled': 'false' } }), logger: silentLogger() });
  try {
    const d = await again.inventory.getDevice(tenant.id, '0004f2c0ffee');
    assert.is(d.lines[0]?.authPassword, SIP);
    assert.is(d.credentials?.password, OWN);
    assert.is(d.params['device.auth.localUserPassword'], USER_PW);
    assert.is((await again.inventory.getProfile(tenant.id, profile.id)).params['device.auth.localAdminPassword'], ADMIN_PW);
    assert.is((await again.inventory.tenantSecrets(tenant.id)).provisioningPassword, prov.password);
  } finally {
    await again.close();
  }
  const raw = rawFiles();
  for (const secret of [SIP, OWN, prov.password, ADMIN_PW, USER_PW]) assert.is(raw.indexOf(Buffer.from(secret)), -1);
});

test('the wrong key opens nothing: a clear error, not garbage', async () => {
  const { loadConfig } = await import('../../src/config.ts');
  const { createApp } = await import('../../src/app.ts');
  const { silentLogger } = await import('../../src/logger.ts');
  const wrong = await createApp({ config: loadConfig({ env: {}, flags: { 'data-dir': s.dataDir, 'https-enabled': 'false', 'master-key': 'ab'.repeat(32) } }), logger: silentLogger() });
  try {
    await wrong.inventory.getDevice(tenant.id, '0004f2c0ffee').then(
      () => assert.unreachable('opened with the wrong key'),
      (err: Error) => assert.match(err.message, /master key/),
    );
  } finally {
    await wrong.close();
  }
});

test.run();
