import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config.ts';
import { createApp } from '../../src/app.ts';
import { silentLogger } from '../../src/logger.ts';
import { tempDir } from '../helpers/app.ts';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const dataDir = tempDir();
const env = { ...process.env, EDGEPROV_DATA_DIR: dataDir, EDGEPROV_AUTH_SCRYPT_COST: '1024' };

async function edgeprov(args: string[], extraEnv: Record<string, string> = {}) {
  try {
    const r = await run('npx', ['edgeprov', ...args], { cwd: root, env: { ...env, ...extraEnv } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `serve` from `entry` on a fresh data dir with a first administrator; resolves once HTTP listens. */
async function startServe(entry: string, admin: { email: string; password: string }) {
  const { spawn } = await import('node:child_process');
  const dir = tempDir();
  const child = spawn(process.execPath, [entry, 'serve', '--data-dir', dir, '--host', '127.0.0.1', '--http-port', '0', '--https-enabled', 'false'], {
    cwd: root,
    env: { ...env, EDGEPROV_INIT_EMAIL: admin.email, EDGEPROV_INIT_PASSWORD: admin.password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const m = out.match(/"port":(\d+)\},"msg":"HTTP listening"/);
      if (m?.[1]) resolve(Number(m[1]));
    });
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  return {
    port,
    /** SIGTERM; resolves with the exit code, the data dir removed. */
    async stop(): Promise<number | null> {
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

test.after(() => rmSync(dataDir, { recursive: true, force: true }));

test('npx edgeprov init creates the first system administrator, then refuses', async () => {
  const first = await edgeprov(['init', '--email', 'Admin@Example.com', '--password', 'a long first password']);
  assert.is(first.code, 0, first.stderr);
  assert.match(first.stdout, /created system administrator admin@example.com/);
  const second = await edgeprov(['init', '--email', 'other@example.com', '--password', 'a long other password']);
  assert.is(second.code, 1);
  assert.match(second.stderr, /already exists/);

  const config = loadConfig({ env: { EDGEPROV_DATA_DIR: dataDir } });
  const app = await createApp({ config, logger: silentLogger() });
  try {
    const signedIn = await app.accounts.signIn('admin@example.com', 'a long first password', '127.0.0.1');
    assert.is(signedIn.user.role, 'system-admin');
    assert.is(await app.store.users.countByRole('system-admin'), 1);
  } finally {
    await app.close();
  }
});

test('init refuses a weak password and missing arguments, naming the problem', async () => {
  const d = tempDir();
  const weak = await edgeprov(['init', '--email', 'a@b.test', '--password', 'short', '--data-dir', d]);
  assert.is(weak.code, 1);
  assert.match(weak.stderr, /at least 10 characters/);
  const missing = await edgeprov(['init', '--data-dir', d]);
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /--email/);
  rmSync(d, { recursive: true, force: true });
});

test('edgeprov config prints the effective configuration, flags winning', async () => {
  const r = await edgeprov(['config', '--http-port', '9090'], { EDGEPROV_HTTP_PORT: '7070', EDGEPROV_TFTP_PORT: '7071' });
  assert.is(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout);
  assert.is(c.http.port, 9090);
  assert.is(c.tftp.port, 7071);
  assert.is(c.dataDir, dataDir);
});

test('an invalid configuration stops with every problem listed', async () => {
  const r = await edgeprov(['config', '--http-port', 'x'], { EDGEPROV_HTTPS_PORT: '-1', EDGEPROV_LOG_LEVEL: 'chatty' });
  assert.is(r.code, 2);
  for (const needle of ['http.port', 'https.port', 'log.level']) assert.match(r.stderr, needle);
  const unknown = await edgeprov(['frobnicate']);
  assert.is(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command/);
});

test('serve starts, answers /healthz, and exits cleanly on SIGTERM', async () => {
  const { port, stop } = await startServe('bin/edgeprov.js', { email: 'boot@example.com', password: 'a long boot password' });
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.is(health.status, 200);
  const token = await fetch(`http://127.0.0.1:${port}/api/v1/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'boot@example.com', password: 'a long boot password' }),
  });
  assert.is(token.status, 200, 'first admin from EDGEPROV_INIT_* variables');
  assert.is(await stop(), 0);
});

test('data survives a restart (a real SQLite file in WAL mode)', async () => {
  const config = loadConfig({ env: { EDGEPROV_DATA_DIR: dataDir } });
  const app = await createApp({ config, logger: silentLogger() });
  const t = await app.inventory.createTenant({ name: 'Persist' });
  await app.inventory.createDevice(t.id, { mac: '0004f2121212' });
  await app.close();
  const again = await createApp({ config, logger: silentLogger() });
  try {
    assert.is((await again.inventory.getDevice(t.id, '00:04:f2:12:12:12')).mac, '0004f2121212');
    const { default: Database } = await import('better-sqlite3');
    const raw = new Database(join(dataDir, 'edgeprov.db'), { readonly: true });
    assert.is(raw.pragma('journal_mode', { simple: true }), 'wal');
    raw.close();
  } finally {
    await again.close();
  }
});


test('the compiled build (what npm start runs) serves phones and the admin API from dist/', async () => {
  await run(process.execPath, ['scripts/build.mjs'], { cwd: root });
  // The first administrator's password goes through the policy, which reads its word list next to the code.
  const { port, stop } = await startServe('dist/main.js', { email: 'dist@example.com', password: 'a long dist password' });
  try {
    const api = `http://127.0.0.1:${port}/api/v1`;
    const call = async (method: string, path: string, token?: string, body?: unknown) => {
      const r = await fetch(`${api}${path}`, { method, headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) }, ...(body !== undefined && { body: JSON.stringify(body) }) });
      return { status: r.status, body: (await r.json()) as any };
    };
    const token = (await call('POST', '/auth/token', undefined, { email: 'dist@example.com', password: 'a long dist password' })).body.token as string;
    const tenant = (await call('POST', '/tenants', token, { name: 'Dist', settings: { allowBasicOverHttp: true } })).body;
    const device = await call('POST', `/tenants/${tenant.id}/devices`, token, { mac: '0004f2000001', model: 'VVX500', lines: [{ index: 1, address: '1001' }] });
    assert.is(device.status, 201);
    const prov = (await call('GET', `/tenants/${tenant.id}/provisioning`, token)).body;
    const basic = `Basic ${Buffer.from(`${prov.username}:${prov.password}`).toString('base64')}`;
    // Templates, the parameter catalogue and the renderer, loaded from dist/ through ../../templates.
    const cfg = await fetch(`http://127.0.0.1:${port}/p/${tenant.provisioning.key}/0004f2000001-device.cfg`, { headers: { authorization: basic } });
    assert.is(cfg.status, 200);
    assert.match(await cfg.text(), /reg\.1\.address="1001"/);
    const master = await fetch(`http://127.0.0.1:${port}/p/${tenant.provisioning.key}/0004f2000001.cfg`, { headers: { authorization: basic } });
    assert.match(await master.text(), /CONFIG_FILES="0004f2000001-device\.cfg, defaults\.cfg"/);
  } finally {
    assert.is(await stop(), 0);
  }
});

test.run();
