import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as P from '../../src/server/tftp/packet.ts';
import { bootstrapAdmin, startServer } from '../helpers/app.ts';
import { haveTool } from '../helpers/tools.ts';
import { rawClient as rawTftpClient } from '../helpers/tftp-client.ts';

const run = promisify(execFile);
const s = await startServer({ 'tftp-enabled': 'true', 'tftp-port': '0' });
const admin = await bootstrapAdmin(s);
const port = s.tftpPort as number;
const api = (method: string, path: string, body?: unknown) => s.call(method, `/api/v1${path}`, { token: admin, ...(body !== undefined && { body }) });
const tenant = (await api('POST', '/tenants', { name: 'Tftp' })).body;
const T = `/tenants/${tenant.id}`;
const site = (await api('POST', `${T}/sites`, { name: 'Loop', subnets: ['127.0.0.0/8'], ntp: { server: 'ntp.example.com' } })).body;
const MAC = '0004f2777777';
await api('POST', `${T}/devices`, { mac: MAC, siteId: site.id, lines: [{ index: 1, address: '7001', authPassword: 'pw' }], params: { 'custom.big': 'x'.repeat(5000) } });
const prov = (await api('GET', `${T}/provisioning`)).body;
const dir = mkdtempSync(join(tmpdir(), 'edgeprov-tftp-'));


test.after(async () => {
  await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function httpGet(name: string): Promise<Buffer> {
  const { PhoneClient } = await import('../../src/sim/phone.ts');
  const r = await new PhoneClient({ base: prov.httpBase, mac: MAC, username: prov.username, password: prov.password }).fetch('GET', name);
  assert.is(r.status, 200, name);
  return r.body;
}

const atftp = haveTool('atftp', 'TFTP tests with the atftp client');
const tftpHpa = haveTool('tftp', 'TFTP tests with the tftp-hpa client');

test('atftp gets the master file, config files and bootstrap: the same bytes as HTTP', async () => {
  if (!atftp) return;
  for (const [name, opts] of [
    [`${MAC}.cfg`, []],
    [`${MAC}-device.cfg`, ['--option', 'blksize 1468']],
    [`${MAC}-device.cfg`, ['--option', 'blksize 512', '--option', 'windowsize 4']],
    ['defaults.cfg', ['--option', 'tsize 0']],
    ['000000000000.cfg', []],
  ] as Array<[string, string[]]>) {
    const out = join(dir, `a-${name}`);
    await run('atftp', [...opts, '-g', '-r', name, '-l', out, '127.0.0.1', String(port)], { timeout: 20_000 });
    assert.equal(readFileSync(out), await httpGet(name), `${name} ${opts.join(' ')}`);
  }
});

test('tftp-hpa gets a file by the tenant key prefix; unknown names are errors', async () => {
  if (!tftpHpa) return;
  const out = join(dir, 'hpa.cfg');
  await run('tftp', ['127.0.0.1', String(port), '-m', 'octet', '-c', 'get', `${tenant.provisioning.key}/${MAC}-device.cfg`, out], { timeout: 20_000 });
  assert.equal(readFileSync(out), await httpGet(`${MAC}-device.cfg`));
  const missing = await run('tftp', ['-v', '127.0.0.1', String(port), '-m', 'octet', '-c', 'get', 'nope.bin', join(dir, 'nope')], { timeout: 20_000 }).then((r) => r.stdout + r.stderr, (e) => String(e.stdout) + String(e.stderr));
  assert.match(missing, /not found/i);
});

test('uploads only to the phone names; writes of anything else are refused', async () => {
  if (!atftp) return;
  const log = join(dir, 'app.log');
  writeFileSync(log, 'tftp log line\n');
  await run('atftp', ['-p', '-r', `${MAC}-app.log`, '-l', log, '127.0.0.1', String(port)], { timeout: 20_000 });
  const list = (await api('GET', `${T}/devices/${MAC}/uploads`)).body.items.map((i: any) => i.name);
  assert.ok(list.includes(`${MAC}-app.log`));
  const refused = await run('atftp', ['-p', '-r', `${MAC}-device.cfg`, '-l', log, '127.0.0.1', String(port)], { timeout: 20_000 }).then(
    (r) => r.stdout + r.stderr,
    (e) => String(e.stdout) + String(e.stderr),
  );
  assert.match(refused, /not allowed|Access violation/i);
});

const rawClient = () => rawTftpClient(port);

test('options: blksize, tsize, timeout, windowsize negotiated; garbage tsize ignored; duplicate ACKs harmless', async () => {
  const c = rawClient();
  c.send(P.request('RRQ', `${MAC}-device.cfg`, { blksize: '1000', tsize: 'banana', windowsize: '3', timeout: '2', bogus: '1' }));
  const o = await c.expect();
  assert.is(o.p.op, 'OACK');
  const opts = (o.p as { options: Map<string, string> }).options;
  assert.is(opts.get('blksize'), '1000');
  assert.is(opts.get('windowsize'), '3');
  assert.is(opts.get('timeout'), '2');
  assert.not.ok(opts.has('tsize'), 'a non-numeric tsize is ignored, not refused');
  assert.not.ok(opts.has('bogus'));
  c.send(P.ack(0), o.port);
  const got: Buffer[] = [];
  let block = 0;
  for (;;) {
    const d = await c.expect();
    assert.is(d.p.op, 'DATA');
    const pd = d.p as { block: number; data: Buffer };
    if (pd.block !== block + 1) continue;
    block = pd.block;
    got.push(pd.data);
    if (block % 3 === 0 || pd.data.length < 1000) {
      c.send(P.ack(block), o.port);
      c.send(P.ack(block), o.port); // duplicate
    }
    if (pd.data.length < 1000) break;
  }
  assert.equal(Buffer.concat(got), await httpGet(`${MAC}-device.cfg`));
  await c.close();
});

test('hostile requests: traversal, unknown opcodes, truncated packets, wrong TID', async () => {
  const c = rawClient();
  for (const name of ['../etc/passwd', '/../../x', 'a\\b', 'logs/../x.cfg']) {
    c.send(P.request('RRQ', name));
    const e = await c.expect();
    assert.is(e.p.op, 'ERROR', name);
  }
  c.send(Buffer.from([0, 9, 1, 2]));
  assert.is((await c.expect()).p.op, 'ERROR');
  c.send(Buffer.from([0, 1, 0x41]));
  assert.is((await c.expect()).p.op, 'ERROR');
  c.send(P.request('WRQ', 'defaults.cfg'));
  const w = await c.expect();
  assert.is(w.p.op, 'ERROR');
  assert.is((w.p as { code: number }).code, P.ERR.accessViolation);
  await c.close();
});

test('fuzz: 10,000 random and mutated packets, no crash, the server still answers', async () => {
  const c = rawClient();
  const seeds = [P.request('RRQ', `${MAC}.cfg`, { blksize: '1468', tsize: '0' }), P.request('WRQ', `${MAC}-app.log`), P.ack(1), P.data(1, Buffer.from('x')), P.error(1, 'x')];
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let i = 0; i < 10_000; i++) {
    let b: Buffer;
    if (i % 2 === 0) {
      b = Buffer.from(seeds[i % seeds.length]!);
      for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      if (rnd() < 0.3) b = b.subarray(0, Math.floor(rnd() * b.length));
    } else {
      b = Buffer.from(Array.from({ length: Math.floor(rnd() * 80) }, () => Math.floor(rnd() * 256)));
    }
    c.send(b);
    if (i % 500 === 0) await new Promise((r) => setImmediate(r));
  }
  await c.close();
  // Sessions opened by mutated requests time out on their own; the listener still serves.
  if (atftp) {
    const out = join(dir, 'after-fuzz.cfg');
    await run('atftp', ['-g', '-r', `${MAC}.cfg`, '-l', out, '127.0.0.1', String(port)], { timeout: 20_000 });
    assert.equal(readFileSync(out), await httpGet(`${MAC}.cfg`));
  }
});

test('a tenant with TFTP off is not served', async () => {
  await api('PATCH', T, { settings: { tftp: false } });
  const c = rawClient();
  c.send(P.request('RRQ', `${MAC}.cfg`));
  const e = await c.expect();
  assert.is(e.p.op, 'ERROR');
  await c.close();
  await api('PATCH', T, { settings: { tftp: true } });
});

test.run();
