import { request as httpRequest } from 'node:http';
import { connect } from 'node:tls';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { digestAuthorization } from '../../src/server/http/device-auth.ts';
import { PhoneClient } from '../../src/sim/phone.ts';
import { bootstrapAdmin, startServerWithTls } from '../helpers/app.ts';

const s = await startServerWithTls();
const admin = await bootstrapAdmin(s);
const api = (method: string, path: string, body?: unknown) => s.call(method, `/api/v1${path}`, { token: admin, ...(body !== undefined && { body }) });
const tenant = (await api('POST', '/tenants', { name: 'Sec' })).body;
const other = (await api('POST', '/tenants', { name: 'Other' })).body;
const T = `/tenants/${tenant.id}`;
const MAC = '0004f2111111';
await api('POST', `${T}/devices`, { mac: MAC, lines: [{ index: 1, address: '1001', authPassword: 'pw' }] });
await api('POST', `${T}/devices`, { mac: '0004f2222222', credentials: { username: 'phone-2222', password: 'own-device-secret-1' } });
await api('POST', `/tenants/${other.id}/devices`, { mac: '0004f2333333' });
const prov = (await api('GET', `${T}/provisioning`)).body;
const ca = s.app.tls!.caPem!;
const key = tenant.provisioning.key;

test.after(async () => {
  await s.stop();
});

/** One raw HTTP request; the path is sent exactly as given. */
function raw(path: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<{ status: number; challenges: string[]; headers: Record<string, unknown>; body: string; ms: number }> {
  const url = new URL(s.base);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          challenges: res.rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1]!.toLowerCase() === 'www-authenticate'),
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
          ms: performance.now() - started,
        }),
      );
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function digest(path: string, opts: { method?: string; password?: string; username?: string; nc?: number; challenge?: string; extra?: Record<string, string>; body?: Buffer } = {}) {
  const method = opts.method ?? 'GET';
  let challenge = opts.challenge;
  if (!challenge) {
    const first = await raw(path, { method });
    // Refused before authentication (unknown key, hostile name): that answer is final.
    if (first.status !== 401) return { challenge: '', authorization: '', res: first };
    challenge = first.challenges[0]!;
  }
  const authorization = digestAuthorization(challenge, { username: opts.username ?? prov.username, password: opts.password ?? prov.password, method, uri: path, ...(opts.nc !== undefined && { nc: opts.nc }) });
  return { challenge, authorization, res: await raw(path, { method, headers: { authorization, ...opts.extra }, ...(opts.body && { body: opts.body }) }) };
}

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

test('no credentials: 401 with SHA-256 and MD5 Digest challenges, each on its own line; no Basic over plain HTTP', async () => {
  const r = await raw(`/p/${key}/${MAC}.cfg`);
  assert.is(r.status, 401);
  assert.is(r.challenges.length, 2);
  assert.match(r.challenges[0]!, /^Digest realm="edgeprov", qop="auth", algorithm=SHA-256, nonce="/);
  assert.match(r.challenges[1]!, /algorithm=MD5/);
  const b = await raw(`/p/${key}/${MAC}.cfg`, { headers: { authorization: basic(prov.username, prov.password) } });
  assert.is(b.status, 401, 'Basic refused over HTTP unless the tenant allows it');
});

test('Digest works with MD5 and SHA-256; Basic over HTTPS; Basic over HTTP once the tenant opts in', async () => {
  const path = `/p/${key}/${MAC}.cfg`;
  const challenges = (await raw(path)).challenges;
  for (const ch of challenges) assert.is((await digest(path, { challenge: ch })).res.status, 200, ch.slice(0, 60));
  const phone = new PhoneClient({ base: prov.httpsBase, mac: MAC, username: prov.username, password: prov.password, ca });
  assert.is((await phone.fetch('GET', `${MAC}.cfg`)).status, 200);
  await api('PATCH', T, { settings: { allowBasicOverHttp: true } });
  const r = await raw(path, { headers: { authorization: basic(prov.username, prov.password) } });
  assert.is(r.status, 200);
  assert.ok((await raw(path)).challenges.some((c) => c.startsWith('Basic')));
  await api('PATCH', T, { settings: { allowBasicOverHttp: false } });
});

test('a Digest response cannot be replayed, moved to another path, or used with a forged nonce', async () => {
  const path = `/p/${key}/${MAC}.cfg`;
  const first = await digest(path, { nc: 1 });
  assert.is(first.res.status, 200);
  const replay = await raw(path, { headers: { authorization: first.authorization } });
  assert.is(replay.status, 401, 'same nonce count again');
  const next = await digest(path, { nc: 2, challenge: first.challenge });
  assert.is(next.res.status, 200, 'a higher count on the same nonce is fine');
  const moved = await raw(`/p/${key}/defaults.cfg`, { headers: { authorization: first.authorization.replace('nc=00000001', 'nc=00000009') } });
  assert.is(moved.status, 401);
  const forged = await digest(path, { challenge: first.challenge.replace(/nonce="[^"]+"/, 'nonce="abc.def.ghi"') });
  assert.is(forged.res.status, 401);
  const wrong = await digest(path, { password: 'not-the-password' });
  assert.is(wrong.res.status, 401);
  assert.is(wrong.res.challenges.length, 2, 'a failure answers with fresh challenges');
});

test('password rotation: old and new both work in the grace period; with no grace the old one stops at once', async () => {
  const path = `/p/${key}/${MAC}.cfg`;
  const old = prov.password;
  const rotated = (await api('POST', `${T}/provisioning/rotate`, { graceSeconds: 3600 })).body;
  assert.is.not(rotated.password, old);
  assert.ok(rotated.previousPasswordValidUntil);
  assert.is((await digest(path, { password: old })).res.status, 200);
  assert.is((await digest(path, { password: rotated.password })).res.status, 200);
  const again = (await api('POST', `${T}/provisioning/rotate`, { graceSeconds: 0 })).body;
  assert.is((await digest(path, { password: rotated.password })).res.status, 401);
  assert.is((await digest(path, { password: old })).res.status, 401);
  assert.is((await digest(path, { password: again.password })).res.status, 200);
  prov.password = again.password;
});

test("a device's own credentials reach its own files only", async () => {
  const own = { username: 'phone-2222', password: 'own-device-secret-1' };
  assert.is((await digest(`/p/${key}/0004f2222222.cfg`, own)).res.status, 200);
  assert.is((await digest(`/p/${key}/0004f2222222-device.cfg`, own)).res.status, 200);
  assert.is((await digest(`/p/${key}/defaults.cfg`, own)).res.status, 401, 'shared files need the tenant credentials');
  assert.is((await digest(`/p/${key}/${MAC}.cfg`, own)).res.status, 401, "another phone's file");
  assert.is((await digest(`/p/${key}/0004f2222222.cfg`, { ...own, password: 'wrong-device-secret' })).res.status, 401);
});

test('wrong tenant key, other tenant MAC, hostile names: 404, never 500', async () => {
  assert.is((await digest(`/p/nosuchkey0000000000/${MAC}.cfg`)).res.status, 404);
  assert.is((await digest(`/p/${key}/0004f2333333.cfg`)).res.status, 404, "other tenant's phone is unknown here, and becomes pending here");
  const names = [
    `${MAC.toUpperCase()}.cfg`,
    '00-04-f2-11-11-11.cfg',
    '00:04:f2:11:11:11.cfg',
    `..%2F${MAC}.cfg`,
    `%2e%2e/${MAC}.cfg`,
    `logs/../${MAC}.cfg`,
    `logs//${MAC}-app.log`,
    `${MAC}.cfg%00.txt`,
    `${MAC}%5C.cfg`,
    `${'a'.repeat(300)}.cfg`,
    'etc/passwd',
    `${MAC}-device.cfg.bak`,
    `%ZZ${MAC}.cfg`,
    `foo..bar.cfg`,
  ];
  for (const n of names) {
    const r = await digest(`/p/${key}/${n}`);
    const expected = n === `${MAC.toUpperCase()}.cfg` ? 200 : 404;
    assert.is(r.res.status, expected, n);
  }
});

test('uploads: only the phone names, size-capped, well-formed, no DOCTYPE; nothing stored otherwise', async () => {
  const put = (name: string, body: Buffer) => digest(`/p/${key}/${name}`, { method: 'PUT', body, extra: { 'content-length': String(body.length) } });
  assert.is((await put(`${MAC}-device.cfg`, Buffer.from('<x/>'))).res.status, 405, 'never overwrite a rendered file');
  assert.is((await put(`${MAC}.cfg`, Buffer.from('<x/>'))).res.status, 405);
  assert.is((await put('defaults.cfg', Buffer.from('<x/>'))).res.status, 405);
  assert.is((await put('whatever.txt', Buffer.from('x'))).res.status, 404);
  assert.is((await raw(`/p/${key}/${MAC}.cfg`, { method: 'POST' })).status, 405);
  assert.is((await raw(`/p/${key}/${MAC}.cfg`, { method: 'DELETE' })).status, 405);
  assert.is((await put(`${MAC}-phone.cfg`, Buffer.alloc(300 * 1024, 0x20))).res.status, 413);
  assert.is((await put(`${MAC}-phone.cfg`, Buffer.from('<PHONE_CONFIG><a x="1"></PHONE_CONFIG>'))).res.status, 400);
  const bomb = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
    `<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>`;
  const b = await put(`${MAC}-directory.xml`, Buffer.from(bomb));
  assert.is(b.res.status, 400);
  assert.ok(b.res.ms < 1000, 'rejected fast');
  assert.is((await put(`${MAC}-app.log`, Buffer.from('bin\u0000ary'))).res.status, 400);
  assert.is((await put('0004f2999999-app.log', Buffer.from('unknown phone'))).res.status, 404);
  const list = (await api('GET', `${T}/devices/${MAC}/uploads`)).body.items;
  assert.equal(list, [], 'nothing was stored');
  assert.is((await put(`${MAC}-app.log`, Buffer.from('ok\n'))).res.status, 204);
});

test('garbage User-Agents do not break anything', async () => {
  // (the throttle above blocks 127.0.0.1 for a while, so this asks the tree directly)
  const t = (await s.app.tree.tenantByKey(key))!.tenant;
  for (const ua of ['', 'x'.repeat(10_000), 'FileTransport PolycomVVX-<script>-UA/../../', '\u0000\u0001', 'Microbrowser/1.0']) {
    const r = await s.app.tree.read({ tenant: t, ip: '10.0.0.1', userAgent: ua, protocol: 'http', auth: { kind: 'tenant' } }, `${MAC}.cfg`);
    assert.is(r.kind, 'file');
  }
});

test('TLS: 1.2 minimum, AEAD suites only, ECDSA and RSA certificates, no client renegotiation, CA served', async () => {
  const port = Number(new URL(s.httpsBase!).port);
  const handshake = (opts: Record<string, unknown>) =>
    new Promise<{ ok: boolean; cipher?: string; key?: string; version?: string; socket?: import('node:tls').TLSSocket }>((resolve) => {
      const sock = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...opts }, () => {
        const cert = sock.getPeerCertificate() as { asn1Curve?: string; bits?: number };
        resolve({ ok: true, cipher: sock.getCipher().name, key: cert.asn1Curve ?? `rsa${cert.bits}`, version: sock.getProtocol() ?? '', socket: sock });
      });
      sock.on('error', () => resolve({ ok: false }));
    });
  const old = await handshake({ maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
  assert.is(old.ok, false, 'TLS 1.1 refused');
  const cbc = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA256:AES128-SHA' });
  assert.is(cbc.ok, false, 'CBC suites refused');
  const ec = await handshake({ maxVersion: 'TLSv1.2', sigalgs: 'ECDSA+SHA256' });
  assert.ok(ec.ok);
  assert.is(ec.key, 'prime256v1');
  assert.match(ec.cipher!, /ECDHE-ECDSA-AES128-GCM/);
  ec.socket!.destroy();
  const rsa = await handshake({ maxVersion: 'TLSv1.2', sigalgs: 'RSA+SHA256:RSA-PSS+SHA256' });
  assert.ok(rsa.ok);
  assert.is(rsa.key, 'rsa2048');
  const reneg = await new Promise<Error | null>((resolve) => {
    rsa.socket!.on('error', (e) => resolve(e));
    rsa.socket!.on('close', () => resolve(new Error('server closed the connection')));
    rsa.socket!.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ?? null));
    rsa.socket!.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  });
  assert.ok(reneg, 'renegotiation refused');
  rsa.socket!.destroy();
  const tls13 = await handshake({});
  assert.is(tls13.version, 'TLSv1.3');
  tls13.socket!.destroy();
  const caRes = await new PhoneClient({ base: `${s.base}/p/${key}/`, mac: MAC, username: prov.username, password: prov.password }).fetch('GET', 'ca.crt');
  assert.is(caRes.status, 200);
  assert.match(caRes.body.toString(), /^-----BEGIN CERTIFICATE-----/);
});

test('a source with many failed logins is throttled; failures are logged with the source address', async () => {
  const lines: string[] = [];
  const logger = s.app.logger as unknown as { warn: (...a: unknown[]) => void };
  const orig = logger.warn.bind(logger);
  logger.warn = (...a: unknown[]) => {
    lines.push(JSON.stringify(a));
    orig(...a);
  };
  let last = 0;
  for (let i = 0; i < 31; i++) last = (await digest(`/p/${key}/${MAC}.cfg`, { password: `nope-${i}` })).res.status;
  assert.is(last, 429);
  logger.warn = orig;
  assert.ok(lines.some((l) => l.includes('"ip":"127.0.0.1"') && l.includes('provisioning_auth_failed')));
});

test.run();
