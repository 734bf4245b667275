import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootPhone, PhoneClient } from '../../src/sim/phone.ts';
import { bootstrapAdmin, startServerWithTls } from '../helpers/app.ts';

const s = await startServerWithTls();
const admin = await bootstrapAdmin(s);
const api = (method: string, path: string, body?: unknown) => s.call(method, `/api/v1${path}`, { token: admin, ...(body !== undefined && { body }) });

const tenant = (await api('POST', '/tenants', { name: 'Acme' })).body;
const T = `/tenants/${tenant.id}`;
const site = (await api('POST', `${T}/sites`, { name: 'HQ', subnets: ['10.20.0.0/16'], timeZone: 'Europe/Berlin', sip: { server: 'pbx.acme.test', port: 5060, transport: 'UDPOnly' }, ntp: { server: 'ntp.acme.test' } })).body;
const base = (await api('POST', `${T}/profiles`, { name: 'Base', params: { 'up.backlight.idleIntensity': '1', 'lcl.ml.lang': 'English_United_Kingdom', 'tcpIpApp.sntp.address': '{{site.ntp.server}}' } })).body;
const lobby = (await api('POST', `${T}/profiles`, { name: 'Lobby', params: { 'up.backlight.idleIntensity': '3', 'reg.1.label': 'Lobby {{device.name}}' } })).body;
const group = (await api('POST', `${T}/groups`, { name: 'Lobby phones', profileIds: [lobby.id] })).body;
await api('PATCH', T, { profileIds: [base.id] });
const MAC = '0004f2abcdef';
await api('POST', `${T}/devices`, {
  mac: MAC,
  model: 'VVX500',
  name: 'Reception',
  siteId: site.id,
  groupIds: [group.id],
  lines: [{ index: 1, address: '1001', displayName: 'Front <Desk> & "Co"', authUserId: 'u1001', authPassword: 'sip-secret-1' }],
});
const prov = (await api('GET', `${T}/provisioning`)).body;
const ca = s.app.tls!.caPem!;

test.after(async () => {
  await s.stop();
});

test('the provisioning endpoint gives bases, credentials and DHCP option values', () => {
  assert.is(prov.httpBase, `${s.base}/p/${tenant.provisioning.key}/`);
  assert.is(prov.httpsBase, `${s.httpsBase}/p/${tenant.provisioning.key}/`);
  assert.is(prov.username, tenant.provisioning.username);
  assert.ok(prov.password.length >= 20);
  assert.is(prov.dhcp.option160, prov.httpsBase.replace('https://', `https://${prov.username}:${prov.password}@`));
  assert.is(prov.dhcp.option66, prov.dhcp.option160);
  assert.is(prov.caUrl, `${prov.httpBase}ca.crt`);
});

for (const [label, scheme] of [
  ['HTTP', 'http'],
  ['HTTPS', 'https'],
] as const) {
  test(`a phone boots over ${label} with Digest: master, every CONFIG_FILES entry, optional 404s, log uploads`, async () => {
    const r = await bootPhone({ base: scheme === 'http' ? prov.httpBase : prov.httpsBase, mac: MAC, username: prov.username, password: prov.password, ca });
    assert.is(r.master, 'own');
    assert.equal(r.configFiles, [`${MAC}-device.cfg`, 'defaults.cfg']);
    const byName = Object.fromEntries(r.requests.map((q) => [`${q.method} ${q.name}`, q.status]));
    assert.is(byName[`GET ${MAC}.cfg`], 200);
    assert.is(byName[`GET ${MAC}-device.cfg`], 200);
    assert.is(byName['GET defaults.cfg'], 200);
    assert.is(byName['GET 000000000000-license.cfg'], 404);
    assert.is(byName[`GET overrides/${MAC}-phone.cfg`], 404);
    assert.is(byName[`PUT logs/${MAC}-boot.log`], 204);
    assert.is(byName[`PUT logs/${MAC}-app.log`], 204);
    assert.not.ok(r.requests.some((q) => q.status >= 500));

    const master = r.files[`${MAC}.cfg`]!;
    assert.match(master, /CONFIG_FILES="0004f2abcdef-device.cfg, defaults.cfg"/);
    assert.match(master, /LOG_FILE_DIRECTORY="logs"/);
    assert.match(master, /OVERRIDES_DIRECTORY="overrides"/);
    const dev = r.files[`${MAC}-device.cfg`]!;
    assert.match(dev, /^<\?xml version="1.0" encoding="UTF-8" standalone="yes"\?>/);
    assert.match(dev, /reg\.1\.address="1001"/);
    assert.match(dev, /reg\.1\.auth\.userId="u1001"/);
    assert.match(dev, /reg\.1\.auth\.password="sip-secret-1"/);
    assert.match(dev, /reg\.1\.displayName="Front &lt;Desk&gt; &amp; &quot;Co&quot;"/);
    assert.match(dev, /reg\.1\.label="Lobby Reception"/, 'group profile with a variable');
    assert.match(dev, /up\.backlight\.idleIntensity="3"/, 'the group beats the tenant');
    assert.match(dev, /tcpIpApp\.sntp\.address="ntp.acme.test"/);
    assert.match(dev, /voIpProt\.server\.1\.address="pbx.acme.test"/);
    assert.match(dev, /tcpIpApp\.sntp\.gmtOffset="3600"/);
    assert.match(r.files['defaults.cfg']!, /prov\.polling\.mode="random"/);
  });
}

test('uploads are stored per device, listed and downloadable through the admin API', async () => {
  const phone = new PhoneClient({ base: prov.httpsBase, mac: MAC, username: prov.username, password: prov.password, ca });
  const override = '<?xml version="1.0" encoding="UTF-8"?><PHONE_CONFIG><OVERRIDES up.backlight.idleIntensity="2"/></PHONE_CONFIG>';
  assert.is((await phone.fetch('PUT', `overrides/${MAC}-phone.cfg`, Buffer.from(override))).status, 204);
  const back = await phone.fetch('GET', `overrides/${MAC}-phone.cfg`);
  assert.is(back.status, 200);
  assert.is(back.body.toString(), override);
  assert.is((await phone.fetch('PUT', `contacts/${MAC}-directory.xml`, Buffer.from('<directory><item_list/></directory>'))).status, 204);
  const list = (await api('GET', `${T}/devices/${MAC}/uploads`)).body.items.map((i: any) => i.name);
  for (const n of [`${MAC}-app.log`, `${MAC}-boot.log`, `${MAC}-phone.cfg`, `${MAC}-directory.xml`]) assert.ok(list.includes(n), n);
  const log = await s.call('GET', `/api/v1${T}/devices/${MAC}/uploads/${MAC}-app.log`, { token: admin });
  assert.is(log.status, 200);
  assert.match(String(log.body), /boot complete\n.*boot complete\n/s, 'logs are appended');
  assert.is((await s.call('GET', `/api/v1${T}/devices/${MAC}/uploads/..%2Fetc`, { token: admin })).status, 404);
  const preview = (await api('GET', `${T}/devices/${MAC}/preview`)).body;
  assert.ok(preview.files.some((f: any) => f.name === `${MAC}-phone.cfg`));
});

test('an unknown MAC is recorded as pending (IP, User-Agent, model, firmware) and falls back to the safe bootstrap', async () => {
  const mac = '64167f000042';
  const r = await bootPhone({ base: prov.httpBase, mac, username: prov.username, password: prov.password, model: 'SPIP550', firmware: '4.0.15.1047', uploadLogs: false });
  assert.is(r.master, 'default');
  assert.equal(r.configFiles, ['bootstrap.cfg']);
  assert.not.match(r.files['bootstrap.cfg']!, /reg\./);
  assert.match(r.files['bootstrap.cfg']!, /prov\.polling\.enabled="1"/);
  await s.app.tree.flushSeen();
  const d = (await api('GET', `${T}/devices/${mac}`)).body;
  assert.is(d.state, 'pending');
  assert.is(d.model, 'SPIP550');
  assert.is(d.lastSeen.ip, '127.0.0.1');
  assert.is(d.lastSeen.firmware, '4.0.15.1047');
  assert.match(d.lastSeen.userAgent, /PolycomSoundPointIP-SPIP_550-UA/);
  assert.is((await api('GET', `${T}/devices?state=pending`)).body.total, 1);
  // Once an admin activates it, the same phone gets its own config.
  await api('PATCH', `${T}/devices/${mac}`, { state: 'active', siteId: site.id, lines: [{ index: 1, address: '2001' }] });
  const again = await bootPhone({ base: prov.httpBase, mac, username: prov.username, password: prov.password, uploadLogs: false, optional: false });
  assert.is(again.master, 'own');
  assert.match(again.files[`${mac}-device.cfg`]!, /reg\.1\.address="2001"/);
});

test('auto-claim from a site subnet creates the device active on that site', async () => {
  const t2 = (await api('POST', '/tenants', { name: 'Claimer', settings: { autoClaim: 'site-subnets' } })).body;
  const site2 = (await api('POST', `/tenants/${t2.id}/sites`, { name: 'Loopback', subnets: ['127.0.0.0/8'] })).body;
  const p2 = (await api('GET', `/tenants/${t2.id}/provisioning`)).body;
  const r = await bootPhone({ base: p2.httpBase, mac: '482567000777', username: p2.username, password: p2.password, uploadLogs: false, optional: false });
  assert.is(r.master, 'own');
  const d = (await api('GET', `/tenants/${t2.id}/devices/482567000777`)).body;
  assert.is(d.state, 'active');
  assert.is(d.siteId, site2.id);
  // Outside every site subnet nothing is claimed.
  await api('PATCH', `/tenants/${t2.id}/sites/${site2.id}`, { subnets: ['10.99.0.0/16'] });
  const r2 = await bootPhone({ base: p2.httpBase, mac: '482567000778', username: p2.username, password: p2.password, uploadLogs: false, optional: false });
  assert.is(r2.master, 'default');
  assert.is((await api('GET', `/tenants/${t2.id}/devices/482567000778`)).body.state, 'pending');
});

test('ETag, If-None-Match, HEAD; a profile change invalidates exactly that render', async () => {
  const phone = new PhoneClient({ base: prov.httpsBase, mac: MAC, username: prov.username, password: prov.password, ca });
  const first = await phone.fetch('GET', `${MAC}-device.cfg`);
  const etag = first.headers.etag as string;
  assert.match(etag, /^"[A-Za-z0-9_-]+"$/);
  const head = await phone.fetch('HEAD', `${MAC}-device.cfg`);
  assert.is(head.status, 200);
  assert.is(head.body.length, 0);
  assert.is(Number(head.headers['content-length']), first.body.length);
  const url = new URL(`${prov.httpsBase}${MAC}-device.cfg`);
  const same = await phoneWithHeaders(phone, url, { 'if-none-match': etag });
  assert.is(same, 304);
  await api('PATCH', `${T}/profiles/${lobby.id}`, { params: { 'up.backlight.idleIntensity': '2', 'reg.1.label': 'Lobby {{device.name}}' } });
  const after = await phone.fetch('GET', `${MAC}-device.cfg`);
  assert.is.not(after.headers.etag, etag);
  assert.match(after.body.toString(), /up\.backlight\.idleIntensity="2"/);
});

async function phoneWithHeaders(_phone: PhoneClient, url: URL, headers: Record<string, string>): Promise<number> {
  // A second client whose first request carries extra headers (after its own challenge round trip).
  const { request } = await import('node:https');
  const challenge: string[] = await new Promise((resolve) => {
    request({ host: url.hostname, port: url.port, path: url.pathname, ca, servername: 'localhost' }, (res) => {
      res.resume();
      resolve(res.rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1]!.toLowerCase() === 'www-authenticate'));
    }).end();
  });
  const { digestAuthorization } = await import('../../src/server/http/device-auth.ts');
  const auth = digestAuthorization(challenge[0]!, { username: prov.username, password: prov.password, method: 'GET', uri: url.pathname });
  return new Promise((resolve) => {
    request({ host: url.hostname, port: url.port, path: url.pathname, ca, servername: 'localhost', headers: { ...headers, authorization: auth } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).end();
  });
}

test('explain lists each parameter with its value and the layer that set it', async () => {
  const e = (await api('GET', `${T}/devices/${MAC}/explain`)).body.parameters;
  const by = Object.fromEntries(e.map((x: any) => [x.name, x]));
  assert.is(by['up.backlight.idleIntensity'].layer, 'group');
  assert.is(by['up.backlight.idleIntensity'].overrides[0].layer, 'tenant');
  assert.is(by['lcl.ml.lang'].layer, 'tenant');
  assert.is(by['voIpProt.server.1.address'].layer, 'site');
  assert.is(by['reg.1.address'].layer, 'device');
  assert.is(by['reg.1.auth.password'].value, '********');
  assert.is(by['prov.polling.mode'].layer, 'defaults');
  assert.is(by['prov.polling.mode'].file, 'defaults.cfg');
  assert.is(by['reg.1.address'].file, `${MAC}-device.cfg`);
});

test('a failed render never reaches a phone: last good version, the error on the device, 503 when there is none', async () => {
  const phone = new PhoneClient({ base: prov.httpsBase, mac: MAC, username: prov.username, password: prov.password, ca });
  const good = (await phone.fetch('GET', `${MAC}-device.cfg`)).body.toString();
  await api('PATCH', `${T}/profiles/${base.id}`, { params: { 'prov.polling.period': '10', 'tcpIpApp.sntp.address': '{{site.nope}}' } });
  const during = await phone.fetch('GET', `${MAC}-device.cfg`);
  assert.is(during.status, 200);
  assert.is(during.body.toString(), good, 'the last good file');
  const d = (await api('GET', `${T}/devices/${MAC}`)).body;
  assert.ok(d.renderError);
  assert.ok(d.renderError.problems.some((p: string) => p.includes('{{site.nope}}')));
  assert.ok(d.renderError.problems.some((p: string) => p.includes('prov.polling.period') && p.includes('at least 3600')));
  const preview = (await api('GET', `${T}/devices/${MAC}/preview`)).body;
  assert.ok(preview.errors.length >= 2);
  assert.is((await api('GET', `${T}/devices/${MAC}/explain`)).status, 400);

  // A device that never rendered gets 503 with Retry-After.
  await api('POST', `${T}/devices`, { mac: '0004f2000503', profileIds: [base.id] });
  const fresh = new PhoneClient({ base: prov.httpsBase, mac: '0004f2000503', username: prov.username, password: prov.password, ca });
  const r = await fresh.fetch('GET', '0004f2000503.cfg');
  assert.is(r.status, 503);
  assert.ok(Number(r.headers['retry-after']) > 0);

  await api('PATCH', `${T}/profiles/${base.id}`, { params: { 'up.backlight.idleIntensity': '1' } });
  assert.is((await fresh.fetch('GET', '0004f2000503.cfg')).status, 200);
  assert.is((await api('GET', `${T}/devices/0004f2000503`)).body.renderError, null, 'the error clears with a good render');
  assert.ok((await api('GET', `${T}/devices/${MAC}`)).body.renderError, 'not rendered again yet');
  assert.equal((await api('GET', `${T}/devices/${MAC}/preview`)).body.errors, []);
  assert.is((await api('GET', `${T}/devices/${MAC}`)).body.renderError, null, 'a preview is a render too');
});

test('unknown parameters pass with a warning; known ones are validated', async () => {
  await api('PATCH', `${T}/devices/${MAC}`, { params: { 'some.future.param': 'x' } });
  const p = (await api('GET', `${T}/devices/${MAC}/preview`)).body;
  assert.equal(p.errors, []);
  assert.ok(p.warnings.some((w: string) => w.startsWith('some.future.param')));
  assert.ok(p.files.find((f: any) => f.name === `${MAC}-device.cfg`).body.includes('some.future.param="x"'));
  await api('PATCH', `${T}/devices/${MAC}`, { params: { 'reg.1.server.1.port': '70000', 'prov.polling.mode': 'sometimes', 'prov.autoConfigUpload.enabled': 'yes' } });
  const bad = (await api('GET', `${T}/devices/${MAC}/preview`)).body;
  assert.is(bad.errors.length, 3);
  await api('PATCH', `${T}/devices/${MAC}`, { params: {} });
});

test.run();
