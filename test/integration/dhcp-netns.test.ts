import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootstrapAdmin, startServer, tempDir } from '../helpers/app.ts';
import { createTestNet, haveNetns, type TestNet } from '../helpers/netns.ts';
import { haveTool } from '../helpers/tools.ts';

/**
 * Real DHCP clients (Debian's udhcpc and dhclient) against edgeprov's built-in server, through a
 * real relay (isc-dhcp-relay), and against Kea, dnsmasq and ISC dhcpd configured with the
 * snippets edgeprov generates — all inside network namespaces this test creates:
 *
 *   cli (veth-c) ── 10.231.0.0/24 ── (veth-s) srv (veth-r) ── 10.232.0.0/24 ── (veth-u) rly (veth-d) ── 10.233.0.0/24 ── (veth-c2) cli2
 *
 * Every client gets its own hook script that only records what it received: the default scripts
 * would rewrite the resolver configuration the namespaces share with the host.
 */

const ready =
  haveNetns('DHCP tests with real clients in network namespaces') &&
  haveTool('udhcpc', 'DHCP tests with the udhcpc client') &&
  haveTool('dhclient', 'DHCP tests with the dhclient client (isc-dhcp-client)') &&
  haveTool('dhcrelay', 'relayed DHCP test (isc-dhcp-relay)') &&
  haveTool('kea-dhcp4', 'Kea snippet test with a real client (kea-dhcp4-server)') &&
  haveTool('dnsmasq', 'dnsmasq snippet test with a real client') &&
  haveTool('dhcpd', 'ISC dhcpd snippet test with a real client (isc-dhcp-server)');

const ROOT = new URL('../..', import.meta.url).pathname;
const POLYCOM_MAC = '00:04:f2:aa:00:01';
const POLYCOM_MAC_2 = '64:16:7f:aa:00:02';
const OTHER_MAC = '02:00:00:aa:00:03';

if (ready) {
  const work = tempDir('edgeprov-netns-');
  // Data prepared on loopback first: tenants, sites with the built-in server on, snippets.
  const s = await startServer({ 'public-hosts': '10.231.0.1' });
  const admin = await bootstrapAdmin(s);
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await s.call(method, path, { token: admin, body });
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const t1 = await api('POST', '/api/v1/tenants', { name: 'Voice One' });
  const site1 = await api('POST', `/api/v1/tenants/${t1.id}/sites`, {
    name: 'HQ',
    subnets: ['10.231.0.0/24'],
    dhcp: { enabled: true, ranges: [{ start: '10.231.0.100', end: '10.231.0.120' }], routers: ['10.231.0.1'], dnsServers: ['10.231.0.1'], leaseSeconds: 600 },
  });
  const t2 = await api('POST', '/api/v1/tenants', { name: 'Voice Two' });
  await api('POST', `/api/v1/tenants/${t2.id}/sites`, {
    name: 'Branch',
    subnets: ['10.233.0.0/24'],
    dhcp: { enabled: true, ranges: [{ start: '10.233.0.50', end: '10.233.0.60' }], routers: ['10.233.0.1'] },
  });
  const p1 = await api('GET', `/api/v1/tenants/${t1.id}/provisioning`);
  const p2 = await api('GET', `/api/v1/tenants/${t2.id}/provisioning`);
  const snippet = async (server: string) => String(await api('GET', `/api/v1/tenants/${t1.id}/sites/${site1.id}/dhcp?server=${server}&polycomOnly=true`));
  const snippets = { kea: await snippet('kea'), dnsmasq: await snippet('dnsmasq'), isc: await snippet('isc') };
  // The child edgeprov serves HTTP on 10.231.0.1:8080 inside the namespace: that is its URL.
  const urlFor = (p: { username: string; password: string; httpBase: string }) =>
    p.httpBase.replace(/^http:\/\/[^/]+/, `http://${p.username}:${p.password}@10.231.0.1:8080`);
  const url1 = urlFor(p1);
  const url2 = urlFor(p2);
  const snippetUrl = p1.dhcp.option160;
  const dataDir = s.dataDir;
  await s.app.close();

  const net: TestNet = createTestNet(['srv', 'cli', 'rly', 'cli2']);
  const { srv, cli, rly, cli2 } = net.ns as Record<'srv' | 'cli' | 'rly' | 'cli2', string>;
  net.link(srv, 'veth-s', '10.231.0.1/24', cli, 'veth-c', '');
  net.link(srv, 'veth-r', '10.232.0.1/24', rly, 'veth-u', '10.232.0.2/24');
  net.link(rly, 'veth-d', '10.233.0.1/24', cli2, 'veth-c2', '');
  net.exec(srv, 'ip', ['route', 'add', '10.233.0.0/24', 'via', '10.232.0.2']);

  test.after(() => {
    net.cleanup();
    rmSync(work, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  // ---- clients ------------------------------------------------------------------------------

  const udhcpcHook = join(work, 'udhcpc-hook.sh');
  writeFileSync(udhcpcHook, '#!/bin/sh\ncase "$1" in bound|renew) env > "$OUT" ;; esac\nexit 0\n');
  chmodSync(udhcpcHook, 0o755);
  let runs = 0;

  const envOf = (file: string): Record<string, string> =>
    Object.fromEntries(
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  /**
   * udhcpc prints unknown options as hex (`opt160=6874…`). Option 66 it knows as a host name and
   * prints `bad` for anything else, a URL included: from udhcpc we can only see that 66 arrived;
   * dhclient shows its value.
   */
  const text = (v: string | undefined) => (v && /^[0-9a-f]+$/.test(v) && v.length % 2 === 0 ? Buffer.from(v, 'hex').toString('latin1') : v);

  function udhcpc(ns: string, iface: string, mac: string): Record<string, string> {
    net.exec(ns, 'ip', ['link', 'set', iface, 'address', mac]);
    const out = join(work, `udhcpc-${++runs}.env`);
    net.exec(ns, 'env', [`OUT=${out}`, 'udhcpc', '-f', '-q', '-n', '-i', iface, '-t', '10', '-T', '1', '-A', '1', '-O', '66', '-O', '160', '-s', udhcpcHook], { timeoutMs: 20_000 });
    assert.ok(existsSync(out), `udhcpc on ${iface} got a lease`);
    const e = envOf(out);
    return { ...e, opt160: text(e.opt160) ?? '', tftp: text(e.tftp) ?? '' };
  }

  async function dhclient(ns: string, iface: string, mac: string): Promise<Record<string, string>> {
    net.exec(ns, 'ip', ['link', 'set', iface, 'address', mac]);
    const n = ++runs;
    const out = join(work, `dhclient-${n}.env`);
    const conf = join(work, `dhclient-${n}.conf`);
    // dhclient clears the environment for its script: the output file is written into the hook.
    const hook = join(work, `dhclient-${n}.sh`);
    writeFileSync(hook, `#!/bin/sh\ncase "$reason" in BOUND|RENEW|REBOOT) env > '${out}.tmp' && mv '${out}.tmp' '${out}' ;; esac\nexit 0\n`);
    chmodSync(hook, 0o755);
    writeFileSync(conf, 'option polycom-boot-server code 160 = text;\nrequest subnet-mask, routers, domain-name-servers, tftp-server-name, polycom-boot-server;\ntimeout 20;\n');
    const child = net.spawn(ns, 'dhclient', ['-4', '-d', '-1', '-cf', conf, '-lf', join(work, `dhclient-${n}.leases`), '-pf', join(work, `dhclient-${n}.pid`), '-sf', hook, iface]);
    let log = '';
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    try {
      await waitFor(() => existsSync(out), 20_000, 'dhclient lease');
    } catch (e) {
      throw new Error(`${(e as Error).message}; dhclient said:\n${log.slice(-2000)}`);
    } finally {
      child.kill('SIGKILL');
    }
    return envOf(out);
  }

  const waitFor = async (done: () => boolean, ms: number, what: string) => {
    for (const end = Date.now() + ms; !done(); ) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  // ---- servers ------------------------------------------------------------------------------

  async function startEdgeprov(): Promise<ChildProcess> {
    const child = net.spawn(srv, process.execPath, [
      '--import',
      'tsx',
      join(ROOT, 'src/main.ts'),
      'serve',
      '--data-dir', dataDir,
      '--host', '0.0.0.0',
      '--http-port', '8080',
      '--https-enabled', 'false',
      '--tftp-enabled', 'false',
      '--backup-enabled', 'false',
      '--public-hosts', '10.231.0.1',
      '--dhcp-enabled', 'true',
      '--dhcp-interface', 'veth-s',
    ]);
    let log = '';
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor(() => log.includes('DHCP listening') || child.exitCode !== null, 30_000, 'edgeprov to start');
    assert.ok(log.includes('DHCP listening'), log);
    return child;
  }
  const stop = async (child: ChildProcess) => {
    child.kill('SIGTERM');
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, 10_000, 'the server to stop');
  };

  test('udhcpc and dhclient get leases from the site pool with the provisioning URL in options 160 and 66', async () => {
    const server = await startEdgeprov();
    try {
      const a = udhcpc(cli, 'veth-c', POLYCOM_MAC);
      assert.is(a.ip, '10.231.0.100');
      assert.is(a.subnet, '255.255.255.0');
      assert.is(a.router, '10.231.0.1');
      assert.is(a.serverid, '10.231.0.1');
      assert.is(a.opt160, url1);
      assert.ok(a.tftp, 'option 66 arrived');
      const b = await dhclient(cli, 'veth-c', POLYCOM_MAC_2);
      assert.is(b.new_ip_address, '10.231.0.101');
      assert.is(b.new_polycom_boot_server, url1);
      assert.is(b.new_tftp_server_name, url1);
      assert.is(b.new_routers, '10.231.0.1');
    } finally {
      await stop(server);
    }
  });

  test('a request relayed by dhcrelay is served from the relay subnet’s site (another tenant) and answered through the relay', async () => {
    const server = await startEdgeprov();
    const relay = net.spawn(rly, 'dhcrelay', ['-4', '-d', '-iu', 'veth-u', '-id', 'veth-d', '10.232.0.1']);
    try {
      const c = udhcpc(cli2, 'veth-c2', POLYCOM_MAC);
      assert.is(c.ip, '10.233.0.50');
      assert.is(c.router, '10.233.0.1');
      assert.is(c.opt160, url2);
    } finally {
      relay.kill('SIGKILL');
      await stop(server);
    }
  });

  test('leases survive a restart of edgeprov: the same phone gets the same address', async () => {
    const server = await startEdgeprov();
    try {
      assert.is(udhcpc(cli, 'veth-c', POLYCOM_MAC).ip, '10.231.0.100');
      assert.is(udhcpc(cli, 'veth-c', OTHER_MAC).ip, '10.231.0.102', 'a new client gets a free address, not a stored one');
      assert.is(udhcpc(cli, 'veth-c', POLYCOM_MAC_2).ip, '10.231.0.101');
    } finally {
      await stop(server);
    }
  });

  /** Runs a third-party DHCP server in the server namespace while `fn` runs. */
  async function withServer(cmd: string, args: string[], fn: () => Promise<void> | void, env?: NodeJS.ProcessEnv): Promise<void> {
    const child = net.spawn(srv, cmd, args, env);
    let log = '';
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    try {
      await fn();
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- ${cmd} said:\n${log.slice(-3000)}`);
    } finally {
      child.kill('SIGKILL');
      await waitFor(() => child.exitCode !== null || child.signalCode !== null, 10_000, `${cmd} to stop`);
    }
  }

  /** A Polycom MAC gets the URL; another vendor's MAC a lease without it (the snippets are Polycom-only). */
  const checkSnippet = () => {
    const phone = udhcpc(cli, 'veth-c', POLYCOM_MAC);
    assert.is(phone.opt160, snippetUrl);
    assert.ok(phone.tftp, 'option 66 arrived');
    const pc = udhcpc(cli, 'veth-c', OTHER_MAC);
    assert.ok(pc.ip, 'a lease');
    assert.is(pc.opt160, '', 'no provisioning URL for a non-Polycom MAC');
  };

  test('Kea configured with the generated snippet hands the URL to a real client', async () => {
    const fragment = JSON.parse(snippets.kea.replace(/^\/\/.*$/gm, ''));
    fragment.subnet4[0].pools = [{ pool: '10.231.0.150 - 10.231.0.160' }];
    const conf = join(work, 'kea.json');
    writeFileSync(
      conf,
      JSON.stringify({
        Dhcp4: {
          'interfaces-config': { interfaces: ['veth-s'], 'dhcp-socket-type': 'raw' },
          'lease-database': { type: 'memfile', persist: false },
          'valid-lifetime': 600,
          ...fragment,
        },
      }),
    );
    await withServer('kea-dhcp4', ['-c', conf], checkSnippet, { KEA_PIDFILE_DIR: work, KEA_LOCKFILE_DIR: work });
  });

  test('dnsmasq configured with the generated snippet hands the URL to a real client', async () => {
    const conf = join(work, 'dnsmasq.conf');
    writeFileSync(
      conf,
      `port=0\ninterface=veth-s\nbind-interfaces\ndhcp-range=10.231.0.150,10.231.0.160,10m\ndhcp-leasefile=${join(work, 'dnsmasq.leases')}\n${snippets.dnsmasq}`,
    );
    await withServer('dnsmasq', ['-d', '--user=root', `--conf-file=${conf}`, `--pid-file=${join(work, 'dnsmasq.pid')}`], checkSnippet);
  });

  test('ISC dhcpd configured with the generated snippet hands the URL to a real client', async () => {
    const conf = join(work, 'dhcpd.conf');
    const leases = join(work, 'dhcpd.leases');
    writeFileSync(leases, '');
    // The snippet is merged into the site's subnet declaration, which keeps its own range.
    writeFileSync(conf, `authoritative;\ndefault-lease-time 600;\n${snippets.isc.replace(/(subnet 10\.231\.0\.0 netmask 255\.255\.255\.0 \{\n)/, '$1  range 10.231.0.150 10.231.0.160;\n')}`);
    await withServer('dhcpd', ['-4', '-f', '-d', '-cf', conf, '-lf', leases, '-pf', join(work, 'dhcpd.pid'), 'veth-s'], checkSnippet);
  });
}

test.run();
