import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootstrapAdmin, startServer, tempDir } from '../helpers/app.ts';
import { haveTool } from '../helpers/tools.ts';

const run = promisify(execFile);
const s = await startServer();
const admin = await bootstrapAdmin(s);
const tenant = (await s.call('POST', '/api/v1/tenants', { token: admin, body: { name: 'Dhcp Co' } })).body;
const site = (await s.call('POST', `/api/v1/tenants/${tenant.id}/sites`, { token: admin, body: { name: 'Branch', subnets: ['10.44.0.0/16', '2001:db8::/64'] } })).body;
const prov = (await s.call('GET', `/api/v1/tenants/${tenant.id}/provisioning`, { token: admin })).body;
const dir = tempDir('edgeprov-dhcp-');

test.after(async () => {
  await s.stop();
});

const snippet = async (server: string, polycomOnly = false) => {
  const r = await s.call('GET', `/api/v1/tenants/${tenant.id}/sites/${site.id}/dhcp?server=${server}&polycomOnly=${polycomOnly}`, { token: admin });
  assert.is(r.status, 200, server);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
  return String(r.body);
};

test('every server gets option 160 and 66 with the provisioning URL, plain or for Polycom MACs only', async () => {
  for (const server of ['isc', 'kea', 'dnsmasq', 'windows', 'mikrotik']) {
    for (const only of [false, true]) {
      const text = await snippet(server, only);
      assert.ok(text.includes(prov.dhcp.option160), `${server} carries the URL`);
      assert.match(text, /160/);
      if (only) assert.match(text.toLowerCase(), /0:4:f2|00:04:f2|0004f2/, `${server} matches Polycom MACs`);
    }
  }
  const bad = await s.call('GET', `/api/v1/tenants/${tenant.id}/sites/${site.id}/dhcp?server=bind`, { token: admin });
  assert.is(bad.status, 400);
  const none = await s.call('GET', `/api/v1/tenants/${tenant.id}/sites/${site.id}/dhcp?server=isc&credentials=false`, { token: admin });
  assert.ok(String(none.body).includes(prov.dhcp.option160WithoutCredentials));
  assert.not.ok(String(none.body).includes(prov.password));
});

test('ISC dhcpd accepts the generated configuration (dhcpd -t)', async () => {
  if (!haveTool('dhcpd', 'ISC dhcpd syntax check (isc-dhcp-server)')) return;
  for (const only of [false, true]) {
    const file = join(dir, `dhcpd-${only}.conf`);
    writeFileSync(file, `authoritative;\n${await snippet('isc', only)}`);
    const r = await run('dhcpd', ['-4', '-t', '-cf', file]).then(() => 'ok', (e) => String(e.stderr));
    assert.is(r, 'ok', r);
  }
});

test('Kea accepts the generated configuration (kea-dhcp4 -t)', async () => {
  if (!haveTool('kea-dhcp4', 'Kea syntax check (kea-dhcp4-server)')) return;
  for (const only of [false, true]) {
    const fragment = JSON.parse((await snippet('kea', only)).replace(/^\/\/.*$/gm, ''));
    const file = join(dir, `kea-${only}.json`);
    writeFileSync(file, JSON.stringify({ Dhcp4: { 'interfaces-config': { interfaces: [] }, 'lease-database': { type: 'memfile', persist: false }, ...fragment } }));
    const r = await run('kea-dhcp4', ['-t', file]).then(() => 'ok', (e) => String(e.stdout) + String(e.stderr));
    assert.is(r, 'ok', r);
  }
});

test('dnsmasq accepts the generated configuration (dnsmasq --test)', async () => {
  if (!haveTool('dnsmasq', 'dnsmasq syntax check')) return;
  for (const only of [false, true]) {
    const file = join(dir, `dnsmasq-${only}.conf`);
    writeFileSync(file, `port=0\ndhcp-range=10.44.0.10,10.44.0.200,12h\n${await snippet('dnsmasq', only)}`);
    const r = await run('dnsmasq', ['--test', `--conf-file=${file}`]).then((x) => String(x.stdout) + String(x.stderr), (e) => `FAIL ${e.stderr}`);
    assert.match(r, /syntax check OK/, r);
  }
});

test('npx edgeprov dhcp-snippet prints the same snippet', async () => {
  // The CLI reads the same database (the test server keeps it open in WAL mode; reads are fine).
  const root = new URL('../..', import.meta.url).pathname;
  const r = await run('npx', ['edgeprov', 'dhcp-snippet', '--tenant', tenant.slug, '--site', 'branch', '--server', 'dnsmasq', '--data-dir', s.dataDir, '--https-enabled', 'false', '--http-port', String(new URL(s.base).port), '--public-hosts', '127.0.0.1'], { cwd: root });
  assert.match(r.stdout, /dhcp-option=160,"http:\/\//);
  assert.match(r.stdout, new RegExp(tenant.provisioning.key));
  const missing = await run('npx', ['edgeprov', 'dhcp-snippet', '--tenant', 'nope', '--site', 'x', '--server', 'isc', '--data-dir', s.dataDir], { cwd: root }).then(() => 0, (e) => e.code);
  assert.is(missing, 1);
});

test.run();
