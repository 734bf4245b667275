import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import yazl from 'yazl';
import { PhoneClient } from '../../src/sim/phone.ts';
import { bootstrapAdmin, startServerWithTls } from '../helpers/app.ts';
import { haveTool } from '../helpers/tools.ts';

/**
 * The firmware catalogue (streamed uploads, part numbers, bundles, refusals), delivery over HTTPS
 * with ranges (curl) and over TFTP (atftp), storm control, and what the master file points at.
 */
const run = promisify(execFile);
const s = await startServerWithTls({ 'tftp-enabled': 'true', 'tftp-port': '0', 'firmware-max-image-bytes': String(8 * 1024 * 1024), 'firmware-max-concurrent': '2' });
const admin = await bootstrapAdmin(s);
const dir = mkdtempSync(join(tmpdir(), 'edgeprov-fw-'));
const ca = readFileSync(join(s.dataDir, 'tls', 'ca.crt'), 'utf8');
const api = (method: string, path: string, body?: unknown) => s.call(method, `/api/v1${path}`, { token: admin, ...(body !== undefined && { body }) });

test.after(async () => {
  await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

const VVX501 = '3111-48500-001';
const VVX601 = '3111-48600-001';
const imageA = randomBytes(3 * 1024 * 1024 + 17);
const imageB = randomBytes(1024 * 1024 + 5);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function upload(version: string, name: string, body: Buffer, query = ''): Promise<{ status: number; body: any }> {
  const r = await fetch(`${s.base}/api/v1/firmware/${version}/images/${name}${query}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/octet-stream' },
    body,
  });
  return { status: r.status, body: await r.json() };
}
const blobs = () => (existsSync(join(s.dataDir, 'firmware', 'blobs')) ? readdirSync(join(s.dataDir, 'firmware', 'blobs')) : []);
const temps = () => (existsSync(join(s.dataDir, 'firmware', 'tmp')) ? readdirSync(join(s.dataDir, 'firmware', 'tmp')) : []);

test('images are added by streaming, stored by sha256, described by part number and models', async () => {
  const r = await upload('6.4.3.5018', `${VVX501}.sip.ld`, imageA);
  assert.is(r.status, 201, JSON.stringify(r.body));
  assert.is(r.body.sha256, sha(imageA));
  assert.is(r.body.size, imageA.length);
  assert.equal(r.body.models, ['VVX501']);
  assert.ok(blobs().includes(sha(imageA)));
  assert.is((await upload('6.4.3.5018', `${VVX601}.sip.ld`, imageA)).status, 201, 'a second part with the same bytes');
  assert.is(blobs().filter((b) => b === sha(imageA)).length, 1, 'stored once');
  assert.is((await upload('6.4.1.1000', `${VVX501}.sip.ld`, imageB)).status, 201);

  const unknown = await upload('6.4.3.5018', '9999-99999-999.sip.ld', imageB);
  assert.is(unknown.status, 400);
  assert.match(JSON.stringify(unknown.body), /part number 9999-99999-999 is not in the model table/);
  assert.is((await upload('6.4.3.5018', '9999-99999-999.sip.ld', imageB, '?models=VVX999')).status, 201, 'models given: accepted');
  const bad = await upload('6.4.3.5018', 'evil.bin', imageB);
  assert.is(bad.status, 400);
  assert.match(JSON.stringify(bad.body), /not a firmware image name/);
  assert.is((await upload('..', `${VVX501}.sip.ld`, Buffer.from('x'))).status, 404, 'traversal in the version never reaches the route');
  assert.is((await upload('1.0;rm', `${VVX501}.sip.ld`, imageB)).status, 400);

  const list = (await api('GET', '/firmware')).body.items;
  assert.equal(list.map((v: { version: string }) => v.version), ['6.4.3.5018', '6.4.1.1000']);
});

test('an oversize or truncated upload keeps nothing', async () => {
  const before = blobs().length;
  const big = await upload('7.0.0', `${VVX501}.sip.ld`, randomBytes(8 * 1024 * 1024 + 1));
  assert.is(big.status, 413);
  assert.is(blobs().length, before);
  assert.equal(temps(), []);
  // Declares 100,000 bytes, sends 1,000, then hangs up.
  const url = new URL(s.base);
  await new Promise<void>((resolve) => {
    const sock = connect(Number(url.port), '127.0.0.1', () => {
      sock.write(`PUT /api/v1/firmware/7.0.1/images/${VVX501}.sip.ld HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`);
      sock.write(randomBytes(1000), () => sock.destroy());
    });
    sock.on('close', () => resolve());
  });
  for (let i = 0; i < 200 && temps().length > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(temps(), [], 'the partial file is gone');
  assert.is((await api('GET', '/firmware/7.0.1')).status, 404);
  assert.is(blobs().length, before);
});

test('a whole release as a .zip: part numbers from the names, other files skipped', async () => {
  const zip = new yazl.ZipFile();
  zip.addBuffer(imageB, `UC_6.4.5/${VVX501}.sip.ld`);
  zip.addBuffer(imageA, `UC_6.4.5/${VVX601}.sip.ld`);
  zip.addBuffer(Buffer.from('release notes'), 'UC_6.4.5/readme.txt');
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  const r = await fetch(`${s.base}/api/v1/firmware/6.4.5/bundle`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/zip' }, body: Buffer.concat(chunks) });
  assert.is(r.status, 201);
  const body = (await r.json()) as { images: Array<{ partNumber: string; sha256: string }> };
  assert.equal(body.images.map((i) => i.partNumber).sort(), [VVX501, VVX601]);
  assert.is(body.images.find((i) => i.partNumber === VVX501)?.sha256, sha(imageB));
  const junk = await fetch(`${s.base}/api/v1/firmware/6.4.6/bundle`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/zip' }, body: randomBytes(5000) });
  assert.is(junk.status, 400);
  assert.match(await junk.text(), /zip/);
});

// ---- a tenant with phones ---------------------------------------------------------------------

const tenant = (await api('POST', '/tenants', { name: 'Firmware Co' })).body;
const T = `/tenants/${tenant.id}`;
const site = (await api('POST', `${T}/sites`, { name: 'Loop', subnets: ['127.0.0.0/8'] })).body;
const prov = (await api('GET', `${T}/provisioning`)).body;
const MAC = '0004f2501501';
await api('POST', `${T}/devices`, { mac: MAC, model: 'VVX501', siteId: site.id });
const phone = (firmware = '6.4.1.1000') =>
  new PhoneClient({ base: prov.httpsBase, mac: MAC, username: prov.username, password: prov.password, ca, model: 'VVX501', firmware });
const appFilePath = async (p = phone()) => /APP_FILE_PATH="([^"]*)"/.exec((await p.fetch('GET', `${MAC}.cfg`)).body.toString())?.[1];

test('assignments point the master file at the image; the most specific one wins; an assigned version cannot be deleted', async () => {
  assert.is(await appFilePath(), '', 'nothing assigned: no firmware line');
  assert.is((await api('PUT', `${T}/firmware/assignments`, { targetKind: 'tenant', version: '6.4.1.1000' })).status, 200);
  assert.is(await appFilePath(), 'fw/6.4.1.1000/sip.ld');
  assert.is((await api('PUT', `${T}/firmware/assignments`, { targetKind: 'site', targetId: site.id, model: 'VVX501', version: '6.4.3.5018' })).status, 200);
  assert.is(await appFilePath(), 'fw/6.4.3.5018/sip.ld');
  const bad = await api('PUT', `${T}/firmware/assignments`, { targetKind: 'site', targetId: site.id, version: '9.9.9' });
  assert.is(bad.status, 400);
  assert.is((await api('PUT', `${T}/firmware/assignments`, { targetKind: 'group', targetId: 'nope', version: '6.4.3.5018' })).status, 400);
  const del = await api('DELETE', '/firmware/6.4.3.5018');
  assert.is(del.status, 409);
  assert.match(JSON.stringify(del.body), /assigned/);
});

async function curl(args: string[]): Promise<{ headers: string; body: Buffer }> {
  const out = join(dir, `curl-${randomBytes(4).toString('hex')}`);
  const hdr = `${out}.h`;
  await run('curl', ['-s', '--cacert', join(s.dataDir, 'tls', 'ca.crt'), '--digest', '-u', `${prov.username}:${prov.password}`, '-D', hdr, '-o', out, ...args], { timeout: 30_000 });
  return { headers: readFileSync(hdr, 'latin1'), body: existsSync(out) ? readFileSync(out) : Buffer.alloc(0) };
}

test('HTTPS delivery with curl: whole, Range, several ranges, bad range, HEAD, ETag; every name form', async () => {
  if (!haveTool('curl', 'firmware delivery test with curl')) return;
  const base = `${prov.httpsBase.replace('://localhost', '://127.0.0.1')}fw/6.4.3.5018/`;
  const url = `${base}${VVX501}.sip.ld`;
  const whole = await curl([url]);
  assert.match(whole.headers, /^HTTP\/1\.1 200/m);
  assert.ok(whole.body.equals(imageA));
  assert.match(whole.headers, new RegExp(`content-length: ${imageA.length}`, 'i'));
  assert.match(whole.headers, new RegExp(`etag: "${sha(imageA)}"`, 'i'));

  const part = await curl(['-r', '1000-1999', url]);
  assert.match(part.headers, /^HTTP\/1\.1 206/m);
  assert.match(part.headers, new RegExp(`content-range: bytes 1000-1999/${imageA.length}`, 'i'));
  assert.ok(part.body.equals(imageA.subarray(1000, 2000)));
  const tail = await curl(['-r', '-10', url]);
  assert.ok(tail.body.equals(imageA.subarray(imageA.length - 10)));

  const multi = await curl(['-r', '0-9,100-109', url]);
  assert.match(multi.headers, /content-type: multipart\/byteranges; boundary=/i);
  const text = multi.body.toString('latin1');
  assert.ok(text.includes(imageA.subarray(0, 10).toString('latin1')));
  assert.ok(text.includes(imageA.subarray(100, 110).toString('latin1')));
  assert.match(text, new RegExp(`Content-Range: bytes 100-109/${imageA.length}`));

  const beyond = await curl(['-r', `${imageA.length + 10}-`, url]);
  assert.match(beyond.headers, /^HTTP\/1\.1 416/m);
  assert.match(beyond.headers, new RegExp(`content-range: bytes \\*/${imageA.length}`, 'i'));

  const head = await curl(['-I', url]);
  assert.match(head.headers, /^HTTP\/1\.1 200/m);
  assert.match(head.headers, new RegExp(`content-length: ${imageA.length}`, 'i'));
  const cached = await curl(['-H', `If-None-Match: "${sha(imageA)}"`, url]);
  assert.match(cached.headers, /^HTTP\/1\.1 304/m);

  // The prefixed form one capture shows, and the default `sip.ld` at the root (tenant assignment).
  const prefixed = await curl([`${prov.httpsBase.replace('://localhost', '://127.0.0.1')}${VVX501}.fw/6.4.3.5018/sip.ld`]);
  assert.ok(prefixed.body.equals(imageA));
  const root = await curl([`${prov.httpsBase.replace('://localhost', '://127.0.0.1')}${VVX501}.sip.ld`]);
  assert.ok(root.body.equals(imageB), 'the tenant-wide assignment (6.4.1.1000)');
  const missing = await curl([`${base}3111-46135-002.sip.ld`]);
  assert.match(missing.headers, /^HTTP\/1\.1 404/m);
});

test('storm control: above the cap a download gets 503 with a jittered Retry-After, not a slow transfer', async () => {
  // An image larger than the socket buffers, so a phone that stops reading keeps its transfer open.
  assert.is((await upload('6.5.0', `${VVX501}.sip.ld`, randomBytes(7 * 1024 * 1024 + 512 * 1024))).status, 201);
  await api('PATCH', T, { settings: { allowBasicOverHttp: true } });
  const url = new URL(`${prov.httpBase}fw/6.5.0/${VVX501}.sip.ld`);
  // Two phones that start a download and stop reading hold both slots.
  const p = new PhoneClient({ base: prov.httpBase, mac: MAC, username: prov.username, password: prov.password });
  const auth = await (async () => {
    const r = await p.fetch('HEAD', `fw/6.5.0/${VVX501}.sip.ld`);
    assert.is(r.status, 200);
    return r;
  })();
  assert.ok(auth);
  const holders = await Promise.all(
    [0, 1].map(
      () =>
        new Promise<import('node:net').Socket>((resolve) => {
          const basic = Buffer.from(`${prov.username}:${prov.password}`).toString('base64');
          const sock = connect(Number(url.port), '127.0.0.1', () => {
            sock.write(`GET ${url.pathname} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ${basic}\r\n\r\n`);
          });
          sock.once('data', () => {
            sock.pause(); // stop reading: the transfer stays open
            resolve(sock);
          });
        }),
    ),
  );
  for (let i = 0; i < 100 && s.app.firmware.limiter.active < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(s.app.firmware.limiter.active, 2);
  const refused = await p.fetch('GET', `fw/6.5.0/${VVX501}.sip.ld`);
  assert.is(refused.status, 503);
  const after = Number(refused.headers['retry-after']);
  assert.ok(after >= 30 && after <= 90, `Retry-After ${after}`);
  for (const h of holders) h.destroy();
  for (let i = 0; i < 200 && s.app.firmware.limiter.active > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(s.app.firmware.limiter.active, 0, 'slots come back when phones go away');
  assert.is((await p.fetch('GET', `fw/6.4.3.5018/${VVX501}.sip.ld`)).status, 200);
  await api('PATCH', T, { settings: { allowBasicOverHttp: false } });
});

test('TFTP serves the same image, streamed from disk (atftp, blksize 1468, with and without windowsize)', async () => {
  if (!haveTool('atftp', 'firmware over TFTP with atftp')) return;
  const port = String(s.tftpPort);
  // Basic over plain HTTP is off, so the bytes to compare come from the catalogue itself.
  for (const opts of [['--option', 'blksize 1468'], ['--option', 'blksize 1468', '--option', 'windowsize 16']]) {
    const out = join(dir, `tftp-${randomBytes(4).toString('hex')}`);
    await run('atftp', [...opts, '-g', '-r', `${prov.httpBase.split('/p/')[1]}fw/6.4.3.5018/${VVX501}.sip.ld`, '-l', out, '127.0.0.1', port], { timeout: 60_000 });
    assert.ok(readFileSync(out).equals(imageA), `same bytes with ${opts.join(' ')}`);
  }
  // The master over TFTP points at the same image as over HTTPS.
  const out = join(dir, 'master.cfg');
  await run('atftp', ['-g', '-r', `${MAC}.cfg`, '-l', out, '127.0.0.1', port], { timeout: 20_000 });
  assert.match(readFileSync(out, 'utf8'), /APP_FILE_PATH="fw\/6\.4\.1\.1000\/sip\.ld"|APP_FILE_PATH="fw\/6\.4\.3\.5018\/sip\.ld"/);
});

test('an image name with no known part number, and firmware names that are not ones, are 404', async () => {
  const p = phone();
  for (const name of ['fw/6.4.3.5018/9999-1-1.sip.ld', 'fw/6.4.3.5018/../x', 'fw/../../etc/passwd', 'fw/6.4.3.5018/sip.ldx', 'fw//sip.ld']) {
    assert.is((await p.fetch('GET', name)).status, 404, name);
  }
});

test('npx edgeprov firmware add: a folder as one release with a progress bar, a single file, a clear error', async () => {
  const root = new URL('../..', import.meta.url).pathname;
  const folder = join(dir, 'UC_6.6.0');
  mkdirSync(folder);
  writeFileSync(join(folder, `${VVX501}.sip.ld`), imageB);
  writeFileSync(join(folder, `${VVX601}.sip.ld`), imageB);
  writeFileSync(join(folder, 'notes.txt'), 'not an image');
  const common = ['--data-dir', s.dataDir, '--https-enabled', 'false'];
  const r = await run('npx', ['edgeprov', 'firmware', 'add', folder, '--version', '6.6.0', ...common], { cwd: root });
  assert.match(r.stdout, new RegExp(`added 6\\.6\\.0 ${VVX501}\\.sip\\.ld \\(VVX501\\) ${imageB.length} bytes sha256 ${sha(imageB)}`));
  assert.match(r.stderr, /\[#{20}\] 100%/);
  const odd = join(dir, '9999-99999-998.sip.ld');
  writeFileSync(odd, imageB);
  const refused = await run('npx', ['edgeprov', 'firmware', 'add', odd, '--version', '6.6.1', ...common], { cwd: root }).then(() => undefined, (e: { code: number; stderr: string }) => e);
  assert.is(refused?.code, 1);
  assert.match(refused?.stderr ?? '', /not in the model table/);
  const ok = await run('npx', ['edgeprov', 'firmware', 'add', odd, '--version', '6.6.1', '--models', 'VVX998', ...common], { cwd: root });
  assert.match(ok.stdout, /added 6\.6\.1 9999-99999-998\.sip\.ld \(VVX998\)/);
  const list = await run('npx', ['edgeprov', 'firmware', 'list', ...common], { cwd: root });
  assert.match(list.stdout, /^6\.6\.0$/m);
  assert.is((await api('GET', '/firmware/6.6.0')).body.images.length, 2);
});

test.run();
