import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/clock.ts';
import { ADMIN, bootstrapAdmin, startServer } from '../helpers/app.ts';

/**
 * Invitations, activation, password reset and change, with a real SMTP exchange: a local
 * smtp-server receives what edgeprov sends through nodemailer, and the test follows the link in
 * the mail like a user would. STARTTLS is switched off (the package's built-in certificate has
 * expired); TLS itself is tested on the HTTPS listener.
 */

interface Received {
  to: string[];
  text: string;
}
const inbox: Received[] = [];
/** Quoted-printable soft breaks and escapes undone, so links read whole. */
const unQp = (raw: string) => raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  logger: false,
  onData(stream, session, done) {
    let raw = '';
    stream.on('data', (d: Buffer) => (raw += d.toString('latin1')));
    stream.on('end', () => {
      inbox.push({ to: session.envelope.rcptTo.map((r) => r.address), text: unQp(raw) });
      done();
    });
  },
});
await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
const smtpPort = (smtp.server.address() as AddressInfo).port;

const clock = new ManualClock(new Date());
const s = await startServer({ 'mail-smtp-url': `smtp://127.0.0.1:${smtpPort}`, 'public-hosts': '127.0.0.1' }, { clock });
const admin = await bootstrapAdmin(s);
const tenant = (await s.call('POST', '/api/v1/tenants', { token: admin, body: { name: 'Mail Co' } })).body;

test.after(async () => {
  await s.stop();
  await new Promise<void>((r) => smtp.close(() => r()));
});

const poll = async (done: () => boolean, what: string) => {
  for (const end = Date.now() + 10_000; !done(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};
/** The next mail to `to`, waited for; returns the link it carries. */
async function mailTo(to: string, seen: number): Promise<{ link: string; text: string }> {
  await poll(() => inbox.filter((m) => m.to.includes(to)).length > seen, `mail to ${to}`);
  const m = inbox.filter((x) => x.to.includes(to))[seen] as Received;
  const link = /https?:\/\/\S+\/account\/(?:activate|reset)\?token=[A-Za-z0-9_-]+/.exec(m.text)?.[0];
  assert.ok(link, `a link in:\n${m.text}`);
  return { link: link as string, text: m.text };
}
const count = (to: string) => inbox.filter((m) => m.to.includes(to)).length;

async function getPage(link: string) {
  const r = await fetch(link);
  return { status: r.status, html: await r.text(), headers: r.headers };
}
async function submit(link: string, password: string, confirm = password) {
  const token = new URL(link).searchParams.get('token') ?? '';
  const r = await fetch(link.split('?')[0] as string, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, password, confirm }).toString(),
  });
  return { status: r.status, html: await r.text() };
}
const bootstrapAdminToken = async () => (await signIn(ADMIN.email, ADMIN.password)).body.token as string;
const signIn = (email: string, password: string) => s.call('POST', '/api/v1/auth/token', { body: { email, password } });

test('an invited user gets a mail, follows the link, chooses a password and signs in; the link works once', async () => {
  const email = 'ada@mail.example';
  const u = await s.call('POST', `/api/v1/tenants/${tenant.id}/users`, { token: admin, body: { email, name: 'Ada', role: 'device-operator' } });
  assert.is(u.status, 201, JSON.stringify(u.body));
  assert.is(u.body.activated, false);
  assert.is((await signIn(email, 'anything at all')).status, 401, 'no sign-in before activation');

  const { link, text } = await mailTo(email, 0);
  assert.match(text, /Subject: Your edgeprov account/);
  assert.ok(link.startsWith(`${s.base}/account/activate?token=`), link);
  const form = await getPage(link);
  assert.is(form.status, 200);
  assert.match(form.html, /<form method="post">/);
  assert.match(form.html, /ada@mail\.example/);
  assert.is(form.headers.get('referrer-policy'), 'no-referrer');
  assert.match(form.headers.get('content-security-policy') ?? '', /default-src 'none'/);

  const common = await submit(link, 'Password2024!');
  assert.is(common.status, 400);
  assert.match(common.html, /too common/);
  assert.is((await submit(link, 'Zebra-Lamp-Tuesday', 'Zebra-Lamp-Tuesdax')).status, 400, 'the two fields must agree');
  const ok = await submit(link, 'Zebra-Lamp-Tuesday');
  assert.is(ok.status, 200, ok.html);
  assert.match(ok.html, /Your account is active/);
  assert.is((await signIn(email, 'Zebra-Lamp-Tuesday')).status, 200);
  assert.is((await s.call('GET', `/api/v1/tenants/${tenant.id}/users/${u.body.id}`, { token: admin })).body.activated, true);

  // Used: the same link opens nothing and sets nothing.
  assert.is((await getPage(link)).status, 400);
  assert.is((await submit(link, 'Another-Good-Passphrase')).status, 400);
  assert.is((await signIn(email, 'Another-Good-Passphrase')).status, 401);

  const trail = await s.call('GET', `/api/v1/tenants/${tenant.id}/audit?action=activateAccount`, { token: admin });
  assert.is(trail.body.items[0]?.actor, email);
});

test('an invitation expires; a new one replaces it and the old link stops working', async () => {
  const email = 'bob@mail.example';
  const u = (await s.call('POST', `/api/v1/tenants/${tenant.id}/users`, { token: admin, body: { email, role: 'device-admin' } })).body;
  const first = await mailTo(email, 0);
  clock.advance(73 * 3600_000);
  assert.is((await getPage(first.link)).status, 400, 'expired after 72 h');
  const later = await bootstrapAdminToken();
  const again = await s.call('POST', `/api/v1/tenants/${tenant.id}/users/${u.id}/invitation`, { token: later });
  assert.is(again.status, 202);
  const second = await mailTo(email, 1);
  assert.is.not(second.link, first.link);
  clock.advance(-73 * 3600_000);
  assert.is((await getPage(first.link)).status, 400, 'replaced by the newer one even within its time');
  assert.is((await submit(second.link, 'Orchid-Window-Seven')).status, 200);
  const done = await s.call('POST', `/api/v1/tenants/${tenant.id}/users/${u.id}/invitation`, { token: admin });
  assert.is(done.status, 409, 'an active account gets no invitation');
});

test('forgot password: the same answer for known and unknown addresses; the reset link ends every session and works once', async () => {
  const email = 'ada@mail.example';
  const session = (await signIn(email, 'Zebra-Lamp-Tuesday')).body.token;
  const apiToken = (await s.call('POST', `/api/v1/tenants/${tenant.id}/tokens`, { token: session, body: { name: 'script' } })).body.token;
  assert.ok(apiToken);
  const unknown = await s.call('POST', '/api/v1/auth/password-reset', { body: { email: 'nobody@mail.example' } });
  const known = await s.call('POST', '/api/v1/auth/password-reset', { body: { email } });
  assert.is(unknown.status, 202);
  assert.equal([known.status, known.body], [unknown.status, unknown.body]);
  const { link, text } = await mailTo(email, 1);
  assert.match(text, /Subject: Reset your edgeprov password/);
  assert.is(count('nobody@mail.example'), 0);

  const token = new URL(link).searchParams.get('token');
  const weak = await s.call('POST', '/api/v1/auth/password-reset/complete', { body: { token, password: 'short' } });
  assert.is(weak.status, 400);
  const r = await s.call('POST', '/api/v1/auth/password-reset/complete', { body: { token, password: 'Maple-Harbor-Quartz' } });
  assert.is(r.status, 200, JSON.stringify(r.body));
  for (const t of [session, apiToken]) assert.is((await s.call('GET', '/api/v1/me', { token: t })).status, 401, 'every session and token ended');
  assert.is((await signIn(email, 'Zebra-Lamp-Tuesday')).status, 401);
  assert.is((await signIn(email, 'Maple-Harbor-Quartz')).status, 200);
  const reused = await s.call('POST', '/api/v1/auth/password-reset/complete', { body: { token, password: 'Other-Harbor-Quartz' } });
  assert.is(reused.status, 400);
  assert.match(JSON.stringify(reused.body), /expired|used/);

  // A reset link lasts an hour.
  await s.call('POST', '/api/v1/auth/password-reset', { body: { email } });
  const late = await mailTo(email, 2);
  clock.advance(61 * 60_000);
  assert.is((await submit(late.link, 'Late-Harbor-Quartz')).status, 400);
  assert.is((await signIn(email, 'Maple-Harbor-Quartz')).status, 200);
});

test('reset requests are throttled per address, with a clear message', async () => {
  let last = 0;
  let body: unknown;
  for (let i = 0; i < 12; i++) {
    const r = await s.call('POST', '/api/v1/auth/password-reset', { body: { email: 'flood@mail.example' } });
    last = r.status;
    body = r.body;
    if (r.status === 429) {
      assert.ok(Number(r.headers.get('retry-after')) > 0);
      break;
    }
  }
  assert.is(last, 429);
  assert.match(JSON.stringify(body), /too many reset requests; try again in \d+ s/);
});

test('change password: needs the current one, follows the policy, ends every session', async () => {
  const email = 'ada@mail.example';
  const t = (await signIn(email, 'Maple-Harbor-Quartz')).body.token;
  const wrong = await s.call('POST', '/api/v1/auth/password', { token: t, body: { currentPassword: 'nope-nope-nope', newPassword: 'Granite-Fox-Lantern' } });
  assert.is(wrong.status, 400);
  assert.match(JSON.stringify(wrong.body), /currentPassword/);
  const common = await s.call('POST', '/api/v1/auth/password', { token: t, body: { currentPassword: 'Maple-Harbor-Quartz', newPassword: 'qwertyuiop' } });
  assert.is(common.status, 400);
  const ok = await s.call('POST', '/api/v1/auth/password', { token: t, body: { currentPassword: 'Maple-Harbor-Quartz', newPassword: 'Granite-Fox-Lantern' } });
  assert.is(ok.status, 204);
  assert.is((await s.call('GET', '/api/v1/me', { token: t })).status, 401);
  assert.is((await signIn(email, 'Granite-Fox-Lantern')).status, 200);
  assert.is((await s.call('POST', '/api/v1/auth/password', { body: { currentPassword: 'a', newPassword: 'b' } })).status, 401, 'signed in only');
});

test('an admin-set password must follow the policy too', async () => {
  const r = await s.call('POST', `/api/v1/tenants/${tenant.id}/users`, { token: admin, body: { email: 'cy@mail.example', role: 'device-operator', password: '1234567890' } });
  assert.is(r.status, 400);
  assert.match(JSON.stringify(r.body), /too common/);
});

test('without SMTP, mail lands in the outbox folder (mode 0600) and the link in it works', async () => {
  const o = await startServer({ 'public-hosts': '127.0.0.1' });
  try {
    const root = await bootstrapAdmin(o);
    const t = (await o.call('POST', '/api/v1/tenants', { token: root, body: { name: 'Outbox Co' } })).body;
    const r = await o.call('POST', `/api/v1/tenants/${t.id}/users`, { token: root, body: { email: 'dee@mail.example', role: 'tenant-admin' } });
    assert.is(r.status, 201);
    const dir = join(o.dataDir, 'outbox');
    const files = readdirSync(dir).filter((f) => f.endsWith('.eml'));
    assert.is(files.length, 1);
    const file = join(dir, files[0] as string);
    assert.is(statSync(file).mode & 0o777, 0o600);
    const text = unQp(readFileSync(file, 'latin1'));
    assert.match(text, /To: dee@mail\.example/);
    const link = /http:\/\/\S+\/account\/activate\?token=[A-Za-z0-9_-]+/.exec(text)?.[0] as string;
    const token = new URL(link).searchParams.get('token');
    const done = await o.call('POST', '/api/v1/auth/activate', { body: { token, password: 'Copper-Meadow-Violet' } });
    assert.is(done.status, 200);
    assert.is((await o.call('POST', '/api/v1/auth/token', { body: { email: 'dee@mail.example', password: 'Copper-Meadow-Violet' } })).status, 200);
  } finally {
    await o.stop();
  }
});

test('SMTP with authentication: the password sits sealed in the configuration and is used as the plain one', async () => {
  const got: string[] = [];
  const secured = new SMTPServer({
    authOptional: false,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, cb) {
      if (auth.username === 'mailer' && auth.password === 'Smtp-Secret-9911') return cb(null, { user: 'mailer' });
      cb(new Error('bad credentials'));
    },
    onData(stream, session, done) {
      stream.on('data', () => undefined);
      stream.on('end', () => {
        got.push(...session.envelope.rcptTo.map((r) => r.address));
        done();
      });
    },
  });
  await new Promise<void>((r) => secured.listen(0, '127.0.0.1', () => r()));
  const key = 'ab'.repeat(32);
  const { SecretBox, parseKey } = await import('../../src/store/secrets.ts');
  const sealed = new SecretBox([parseKey(key)]).seal('Smtp-Secret-9911');
  assert.match(sealed, /^enc:v1:/);
  const port = (secured.server.address() as AddressInfo).port;
  const o = await startServer({ 'master-key': key, 'mail-smtp-url': `smtp://mailer@127.0.0.1:${port}`, 'mail-smtp-password': sealed, 'public-hosts': '127.0.0.1' });
  try {
    const root = await bootstrapAdmin(o);
    const t = (await o.call('POST', '/api/v1/tenants', { token: root, body: { name: 'Auth Mail' } })).body;
    assert.is((await o.call('POST', `/api/v1/tenants/${t.id}/users`, { token: root, body: { email: 'eve@mail.example', role: 'device-operator' } })).status, 201);
    await poll(() => got.includes('eve@mail.example'), 'the mail through the authenticated server');
  } finally {
    await o.stop();
    await new Promise<void>((r) => secured.close(() => r()));
  }
});

test.run();
