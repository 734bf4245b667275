import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/clock.ts';
import { ADMIN, bootstrapAdmin, startServer } from '../helpers/app.ts';

/**
 * Deletion on request (unreachable at once, purged after the grace period), purge a year after the
 * subscription ended, and irreversible anonymization — driven by an injected clock, checked on the
 * raw database file, its WAL and the uploads folder.
 */
const run = promisify(execFile);
const DAY = 86_400_000;
const clock = new ManualClock(new Date());
const s = await startServer({ 'public-hosts': '127.0.0.1' }, { clock });
let admin = await bootstrapAdmin(s);
let adminAt = clock.now().getTime();
/** The system admin's token, signed in again once the clock has moved past its lifetime. */
async function root(): Promise<string> {
  if (clock.now().getTime() - adminAt > 3600_000) {
    admin = (await s.call('POST', '/api/v1/auth/token', { body: ADMIN })).body.token;
    adminAt = clock.now().getTime();
  }
  return admin;
}

test.after(async () => {
  await s.stop();
});

const api = async (method: string, path: string, body?: unknown, token?: string) => s.call(method, `/api/v1${path}`, { token: token ?? (await root()), body });
const must = async (method: string, path: string, body?: unknown, token?: string) => {
  const r = await api(method, path, body, token);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};
const signIn = (email: string, password: string) => s.call('POST', '/api/v1/auth/token', { body: { email, password } });

/** Everything of the database on disk: the file and its WAL. */
const rawDb = () => ['edgeprov.db', 'edgeprov.db-wal'].map((f) => join(s.dataDir, f)).filter(existsSync).map((f) => readFileSync(f).toString('latin1')).join('\n');
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? filesUnder(join(dir, n)) : [join(dir, n)]));
}

/** A phone request with Basic credentials from a chosen loopback address. */
function phone(method: 'GET' | 'PUT', url: string, auth: string, from: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, localAddress: from, headers: { authorization: `Basic ${Buffer.from(auth).toString('base64')}`, 'user-agent': 'FileTransport PolycomVVX-VVX_501-UA/6.4.3.5018' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function populated(name: string, slug: string) {
  const t = await must('POST', '/tenants', { name, slug, settings: { allowBasicOverHttp: true } });
  const site = await must('POST', `/tenants/${t.id}/sites`, { name: `${name} Berlin Office`, location: `Alexanderplatz 1, ${name}`, description: `Floor 3 of ${name}` });
  const group = await must('POST', `/tenants/${t.id}/groups`, { name: `${name} Sales Team North` });
  const email = `karl.meier@${slug}.example`;
  await must('POST', `/tenants/${t.id}/users`, { email, name: `Karl Meier of ${name}`, role: 'tenant-admin', password: 'Karl-Long-Passphrase' });
  const device = await must('POST', `/tenants/${t.id}/devices`, {
    mac: slug === 'acme-anon' ? '0004f2aa0001' : '0004f2bb0001',
    name: `Reception desk ${name}`,
    siteId: site.id,
    groupIds: [group.id],
    labels: [`anna-phone-${slug}`],
    lines: [{ index: 1, address: `anna.schmidt@${slug}.pbx.example`, displayName: `Anna Schmidt ${name}`, authUserId: `anna42${slug}`, authPassword: 'SipSecret-1' }],
    params: { 'reg.1.label': `Anna Schmidt ${name}` },
  });
  const prov = await must('GET', `/tenants/${t.id}/provisioning`);
  return { t, site, group, device, prov, email };
}

test('a tenant marked for deletion is unreachable at once, can be restored, and is purged after the grace period', async () => {
  const x = await populated('Doomed Corp', 'doomed');
  const karl = (await signIn(x.email, 'Karl-Long-Passphrase')).body.token;
  assert.is((await api('GET', `/tenants/${x.t.id}`, undefined, karl)).status, 200);
  const master = `${x.prov.httpBase}${x.device.mac}.cfg`;
  const creds = `${x.prov.username}:${x.prov.password}`;
  assert.is(await phone('GET', master, creds, '127.0.0.1'), 200);

  // The tenant's own admin asks for deletion.
  const marked = await api('POST', `/tenants/${x.t.id}/deletion`, undefined, karl);
  assert.is(marked.status, 202);
  assert.is(marked.body.tenant.deletion.purgeAfter, new Date(clock.now().getTime() + 30 * DAY).toISOString());
  assert.is((await api('GET', `/tenants/${x.t.id}`, undefined, karl)).status, 401, 'its users are signed out');
  assert.is((await signIn(x.email, 'Karl-Long-Passphrase')).status, 401, 'and cannot sign in');
  assert.is((await api('GET', `/tenants/${x.t.id}`)).status, 404, 'gone for the system administrator too');
  assert.is((await api('GET', `/tenants/${x.t.id}/devices`)).status, 404);
  assert.not.ok((await must('GET', '/tenants')).items.some((t: { id: string }) => t.id === x.t.id));
  assert.is(await phone('GET', master, creds, '127.0.0.1'), 404, 'phones get nothing');
  const deleted = await must('GET', '/deleted-tenants');
  assert.equal(deleted.items.map((t: { id: string }) => t.id), [x.t.id]);

  // Restored within the grace period, everything is back; then deleted again by the system admin.
  await must('POST', `/deleted-tenants/${x.t.id}/restore`);
  assert.is((await api('GET', `/tenants/${x.t.id}/devices/${x.device.id}`)).status, 200);
  assert.is(await phone('GET', master, creds, '127.0.0.1'), 200);
  assert.is((await api('DELETE', `/tenants/${x.t.id}`)).status, 202);

  clock.advance(29 * DAY);
  assert.equal(await s.app.retention.tick(), []);
  assert.ok(rawDb().includes('Doomed Corp Berlin Office'), 'kept during the grace period');
  clock.advance(2 * DAY);
  const admin2 = await root();
  assert.equal(await s.app.retention.tick(), [{ tenantId: x.t.id, reason: 'deletion' }]);
  assert.equal((await must('GET', '/deleted-tenants', undefined, admin2)).items, []);
  const raw = rawDb();
  for (const v of ['Doomed Corp', x.email, 'anna.schmidt@doomed', 'Karl Meier of Doomed', 'Alexanderplatz 1, Doomed']) {
    assert.not.ok(raw.includes(v), `"${v}" is gone from the database file and WAL`);
  }
  assert.not.ok(existsSync(join(s.dataDir, 'uploads', x.t.id)));
  const system = await must('GET', '/audit?action=purgeTenant', undefined, admin2);
  assert.is(system.items[0].target, `/tenants/${x.t.id}`);
  assert.is(system.items[0].actor, 'system');
  assert.match(JSON.stringify(system.items[0].after), /grace period/);
});

test('a tenant whose subscription ended is purged 365 days later; only system administrators set it', async () => {
  const x = await must('POST', '/tenants', { name: 'Lapsed Ltd' });
  const u = await must('POST', `/tenants/${x.id}/users`, { email: 'ta@lapsed.example', role: 'tenant-admin', password: 'Lapsed-Long-Passphrase' });
  assert.ok(u.id);
  const ta = (await signIn('ta@lapsed.example', 'Lapsed-Long-Passphrase')).body.token;
  const endsAt = new Date(clock.now().getTime() - DAY).toISOString();
  assert.is((await api('PUT', `/tenants/${x.id}/subscription`, { endsAt }, ta)).status, 403);
  assert.is((await api('PUT', `/tenants/${x.id}/subscription`, { endsAt: 'soon' })).status, 400);
  assert.is((await must('PUT', `/tenants/${x.id}/subscription`, { endsAt })).subscriptionEndsAt, endsAt);
  clock.advance(363 * DAY);
  assert.equal(await s.app.retention.tick(), []);
  clock.advance(2 * DAY);
  assert.equal(await s.app.retention.tick(), [{ tenantId: x.id, reason: 'subscription' }]);
  assert.is((await api('GET', `/tenants/${x.id}`)).status, 404);
  assert.not.ok(rawDb().includes('Lapsed Ltd'));
});

test('anonymizing a tenant leaves no original value in the database, its WAL or the uploads, and keeps the structure', async () => {
  const x = await populated('Acme Anon', 'acme-anon');
  // The tenant's admin works in it (audit trail: sign-in, changes with before and after).
  const karl = (await signIn(x.email, 'Karl-Long-Passphrase')).body.token;
  await must('PATCH', `/tenants/${x.t.id}/devices/${x.device.id}`, { name: 'Reception desk Acme Anon (left)' }, karl);
  // The phone reports in from its own address and uploads a log naming its user.
  const creds = `${x.prov.username}:${x.prov.password}`;
  assert.is(await phone('GET', `${x.prov.httpBase}${x.device.mac}.cfg`, creds, '127.0.0.77'), 200);
  assert.is(await phone('PUT', `${x.prov.httpBase}${x.device.mac}-app.log`, creds, '127.0.0.77', `registered anna42acme-anon as Anna Schmidt Acme Anon from 127.0.0.77\n`), 204);
  await s.app.tree.flushSeen();
  const originals = [
    'Acme Anon Berlin Office',
    'Alexanderplatz 1, Acme Anon',
    'Floor 3 of Acme Anon',
    'Acme Anon Sales Team North',
    'Reception desk Acme Anon',
    'anna-phone-acme-anon',
    'anna.schmidt@acme-anon.pbx.example',
    'Anna Schmidt Acme Anon',
    'anna42acme-anon',
    x.email,
    'Karl Meier of Acme Anon',
    '127.0.0.77',
  ];
  const uploads = () => filesUnder(join(s.dataDir, 'uploads', x.t.id)).map((f) => readFileSync(f, 'latin1')).join('\n');
  const everywhere = () => rawDb() + uploads();
  for (const v of originals) assert.ok(everywhere().includes(v), `"${v}" is there before`);

  const wrong = await api('POST', `/tenants/${x.t.id}/anonymize`, { confirm: 'nope' });
  assert.is(wrong.status, 400);
  assert.match(JSON.stringify(wrong.body), /slug/);
  assert.ok(rawDb().includes('Anna Schmidt Acme Anon'), 'nothing changed');

  const done = await api('POST', `/tenants/${x.t.id}/anonymize`, { confirm: 'acme-anon' });
  assert.is(done.status, 200, JSON.stringify(done.body));
  assert.ok(done.body.values >= originals.length);
  assert.is(done.body.files, 1);
  const all = everywhere();
  for (const v of [...originals, 'Acme Anon']) assert.not.ok(all.includes(v), `"${v}" is gone`);

  // Counts and structure stay; values are random alphanumeric strings.
  const d = await must('GET', `/tenants/${x.t.id}/devices/${x.device.id}`, undefined);
  assert.is(d.lines.length, 1);
  assert.match(d.lines[0].address, /^[A-Za-z0-9]{12}$/);
  assert.match(d.name, /^[A-Za-z0-9]{12}$/);
  assert.is(d.labels.length, 1);
  assert.match(d.lastSeen.ip, /^[A-Za-z0-9]{12}$/);
  assert.is(d.lines[0].authPasswordSet, true, 'secrets are not personal data: kept');
  const users = (await must('GET', `/tenants/${x.t.id}/users`, undefined)).items;
  assert.is(users.length, 1);
  assert.match(users[0].email, /^[a-z0-9]{12}@anonymized\.invalid$/);
  assert.is((await api('GET', '/me', undefined, karl)).status, 401, 'the old address is signed out');
  const sites = (await must('GET', `/tenants/${x.t.id}/sites`, undefined)).items;
  assert.is(sites.length, 1);
  // The phone still boots: anonymization is not deletion.
  assert.is(await phone('GET', `${x.prov.httpBase}${x.device.mac}.cfg`, creds, '127.0.0.1'), 200);
});

test('anonymizing one device touches only that device', async () => {
  const t = await must('POST', '/tenants', { name: 'Two Phones' });
  const a = await must('POST', `/tenants/${t.id}/devices`, { mac: '0004f2cc0001', name: 'Desk of Zoe Quill', lines: [{ index: 1, address: 'zoe.quill@pbx.example' }] });
  const b = await must('POST', `/tenants/${t.id}/devices`, { mac: '0004f2cc0002', name: 'Desk of Yann Rook', lines: [{ index: 1, address: 'yann.rook@pbx.example' }] });
  const r = await must('POST', `/tenants/${t.id}/devices/${a.mac}/anonymize`, undefined);
  assert.ok(r.values >= 2);
  const raw = rawDb();
  assert.not.ok(raw.includes('Desk of Zoe Quill'));
  assert.not.ok(raw.includes('zoe.quill@pbx.example'));
  assert.is((await must('GET', `/tenants/${t.id}/devices/${b.id}`, undefined)).name, 'Desk of Yann Rook');
  assert.is((await api('POST', `/tenants/${t.id}/devices/0004f2ffffff/anonymize`, undefined)).status, 404);
});

test('npx edgeprov anonymize asks for --yes, then does it', async () => {
  const t = await must('POST', '/tenants', { name: 'Cli Anon', slug: 'cli-anon' });
  await must('POST', `/tenants/${t.id}/devices`, { mac: '0004f2dd0001', name: 'Desk of Walt Umber' });
  const cwd = new URL('../..', import.meta.url).pathname;
  const base = ['edgeprov', 'anonymize', '--tenant', 'cli-anon', '--device', '0004f2dd0001', '--data-dir', s.dataDir, '--https-enabled', 'false'];
  const refused = await run('npx', base, { cwd }).then(() => 0, (e: { code: number; stderr: string }) => e);
  assert.is((refused as { code: number }).code, 2);
  assert.match((refused as { stderr: string }).stderr, /--yes/);
  const ok = await run('npx', [...base, '--yes'], { cwd });
  assert.match(ok.stdout, /anonymized device 0004f2dd0001: \d+ value\(s\) replaced/);
  assert.not.ok(rawDb().includes('Desk of Walt Umber'));
});

test.run();
