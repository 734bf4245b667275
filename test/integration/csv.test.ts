import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootstrapAdmin, startServer } from '../helpers/app.ts';

const s = await startServer();
const admin = await bootstrapAdmin(s);
const api = (method: string, path: string, body?: unknown) => s.call(method, `/api/v1${path}`, { token: admin, ...(body !== undefined && { body }) });
const tenant = (await api('POST', '/tenants', { name: 'Csv' })).body;
const T = `/tenants/${tenant.id}`;
await api('POST', `${T}/sites`, { name: 'HQ' });
await api('POST', `${T}/groups`, { name: 'Lobby' });
const csv = (text: string, dryRun = false) => s.call('POST', `/api/v1${T}/devices/import?dryRun=${dryRun}`, { token: admin, raw: text, headers: { 'content-type': 'text/csv' } });

test.after(async () => {
  await s.stop();
});

test('import: dry run reports every row and changes nothing; a bad row stops the whole file', async () => {
  const file = [
    'mac,name,model,site,groups,labels,line1_address,line1_auth_password',
    '00:04:F2:00:00:01,Desk 1,VVX500,HQ,Lobby,a;b,1001,pw1',
    '0004f2000002,"Desk, 2",VVX400,,,,1002,',
    'not-a-mac,x,,,,,,',
    '0004f2000001,dup,,,,,,',
    '0004f2000003,=HYPERLINK("http://evil"),,,,,,',
    '0004f2000004,y,,Nowhere,Ghosts,,,',
  ].join('\n');
  const dry = await csv(file, true);
  assert.is(dry.status, 200);
  assert.equal(dry.body.rows.map((r: any) => r.ok), [true, true, false, false, false, false]);
  assert.is(dry.body.rows[2].errors[0].path, 'mac');
  assert.match(dry.body.rows[3].errors[0].message, /twice/);
  assert.match(dry.body.rows[4].errors[0].message, /formula/);
  assert.equal(dry.body.rows[5].errors.map((e: any) => e.path).sort(), ['groups', 'site']);
  assert.is((await api('GET', `${T}/devices`)).body.total, 0);
  const real = await csv(file);
  assert.is(real.status, 422);
  assert.is(real.body.applied, false);
  assert.is((await api('GET', `${T}/devices`)).body.total, 0, 'nothing half-applied');
});

test('import applies all rows at once, updates known MACs, and the export round-trips safely', async () => {
  const ok = await csv('mac,name,model,site,groups,labels,line1_address,line1_auth_password\n0004f2000001,Desk 1,VVX500,HQ,Lobby,a;b,1001,pw1\n0004f2000002,"Desk, 2",VVX400,,,,1002,\n');
  assert.is(ok.status, 200, JSON.stringify(ok.body));
  assert.is(ok.body.applied, true);
  const d1 = (await api('GET', `${T}/devices/0004f2000001`)).body;
  assert.is(d1.name, 'Desk 1');
  assert.is(d1.lines[0].authPasswordSet, true);
  assert.equal(d1.labels, ['a', 'b']);
  const upd = await csv('mac,name\n0004f2000002,-renamed\n');
  assert.is(upd.status, 422, 'a formula-looking cell is refused on import');
  await api('PATCH', `${T}/devices/0004f2000002`, { name: '=1+2' });
  const exp = await s.call('GET', `/api/v1${T}/devices.csv`, { token: admin });
  assert.is(exp.status, 200);
  assert.match(exp.headers.get('content-type') ?? '', /text\/csv/);
  const lines = String(exp.body).trim().split('\n');
  assert.is(lines[0], 'mac,name,model,state,site,groups,labels,line1_address,line1_display_name,line1_auth_user,line1_auth_password,last_seen_at,last_ip,last_firmware');
  assert.is(lines.length, 3);
  assert.match(String(exp.body), /0004f2000002,'=1\+2,/, 'formula neutralised');
  assert.match(String(exp.body), /0004f2000001,Desk 1,VVX500,active,HQ,Lobby,a;b,1001,,,,/);
  assert.not.match(String(exp.body), /pw1/, 'passwords are never exported');
  // The export (minus server-only columns) imports back as updates.
  const back = String(exp.body).split('\n').map((l) => l.split(',').slice(0, 11).join(',')).join('\n');
  const round = await csv(back, true);
  assert.equal(round.body.rows.map((r: any) => [r.op, r.ok]), [['update', true], ['update', true]]);
});

test('profiles export as JSON that imports back, and as the Polycom XML they produce', async () => {
  const p = (await api('POST', `${T}/profiles`, { name: 'Export me', description: 'd', params: { 'reg.1.label': 'A & <B>', 'prov.polling.enabled': '1' } })).body;
  const j = await api('GET', `${T}/profiles/${p.id}/export`);
  assert.is(j.status, 200);
  assert.equal(j.body, { name: 'Export me', description: 'd', params: { 'reg.1.label': 'A & <B>', 'prov.polling.enabled': '1' } });
  assert.is((await api('POST', `${T}/profiles`, { ...j.body, name: 'Imported' })).status, 201);
  const x = await s.call('GET', `/api/v1${T}/profiles/${p.id}/export?format=xml`, { token: admin });
  assert.match(String(x.body), /<polycomConfig\n  prov\.polling\.enabled="1"\n  reg\.1\.label="A &amp; &lt;B&gt;"\/>/);
  // A value XML cannot carry: a clear refusal naming it, never a broken file.
  const bad = (await api('POST', `${T}/profiles`, { name: 'Bell \u0007 --', params: { 'up.welcome': 'ding\u0007' } })).body;
  const refused = await s.call('GET', `/api/v1${T}/profiles/${bad.id}/export?format=xml`, { token: admin });
  assert.is(refused.status, 400, JSON.stringify(refused.body));
  assert.match(JSON.stringify(refused.body), /params\.up\.welcome.*U\+0007/);
});

test('bad files: unknown or missing columns, unreadable CSV, wrong media type, oversize', async () => {
  const unknown = await csv('mac,colour\n0004f2000009,red\n');
  assert.is(unknown.status, 400);
  assert.match(unknown.body.error.details[0].message, /unknown column "colour"/);
  assert.is((await csv('name\nx\n')).status, 400);
  assert.is((await csv('mac,name\n"unterminated,x\n')).status, 400);
  const json = await s.call('POST', `/api/v1${T}/devices/import`, { token: admin, body: { mac: 'x' } });
  assert.is(json.status, 415);
  const big = await csv(`mac,name\n${'0004f2000009,x\n'.repeat(200_000)}`);
  assert.is(big.status, 413);
});

test.run();
