import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, copyFileSync, truncateSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createApp } from '../../src/app.ts';
import { ManualClock } from '../../src/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/logger.ts';
import { tempDir } from '../helpers/app.ts';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const dataDir = tempDir();
const flags = { 'data-dir': dataDir, 'https-enabled': 'true', 'http-enabled': 'false', 'tftp-enabled': 'false', 'auth-scrypt-cost': '1024', 'backup-keep': '3' };
const clock = new ManualClock('2026-05-01T02:00:00Z');
const open = () => createApp({ config: loadConfig({ env: {}, flags }), logger: silentLogger(), clock });
const edgeprov = (args: string[]) =>
  run('npx', ['edgeprov', ...args, '--data-dir', dataDir], { cwd: root }).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (e) => ({ code: e.code as number, out: String(e.stdout) + String(e.stderr) }),
  );

let tenantId = '';
{
  const app = await open();
  const t = await app.inventory.createTenant({ name: 'Backed up' });
  tenantId = t.id;
  await app.inventory.createDevice(t.id, { mac: '0004f2bacc01', name: 'Original', lines: [{ index: 1, address: '1', authPassword: 'pw' }] });
  const { UploadStore } = await import('../../src/provisioning/uploads.ts');
  await new UploadStore(join(dataDir, 'uploads')).write(t.id, '0004f2bacc01', 'app.log', Buffer.from('a log line\n'));
  await app.close();
}

const backups = () => readdirSync(join(dataDir, 'backups')).filter((n) => n.endsWith('.epbak')).sort();

test('the daily backup runs once its time has come, once a day, keeping the newest N', async () => {
  const app = await open();
  try {
    assert.is(await app.backups.tick(), undefined, 'before 03:00 UTC');
    clock.set('2026-05-01T03:00:30Z');
    assert.ok(await app.backups.tick());
    assert.is(await app.backups.tick(), undefined, 'once a day');
    for (const day of ['02', '03', '04', '05']) {
      clock.set(`2026-05-${day}T03:10:00Z`);
      assert.ok(await app.backups.tick());
    }
    assert.equal(backups(), ['edgeprov-20260503T031000Z.epbak', 'edgeprov-20260504T031000Z.epbak', 'edgeprov-20260505T031000Z.epbak']);
    const file = join(dataDir, 'backups', backups()[2]!);
    assert.is(statSync(file).mode & 0o777, 0o600);
    const raw = readFileSync(file);
    assert.is(raw.indexOf(Buffer.from('Original')), -1, 'the contents are encrypted');
  } finally {
    await app.close();
  }
});

test('backup, change, restore: the data is as it was', async () => {
  const made = await edgeprov(['backup']);
  assert.is(made.code, 0, made.out);
  const file = /wrote (\S+)/.exec(made.out)![1]!;
  let app = await open();
  await app.inventory.updateDevice(tenantId, '0004f2bacc01', { name: 'Changed' });
  await app.inventory.createDevice(tenantId, { mac: '0004f2bacc02' });
  await app.close();
  const restored = await edgeprov(['restore', file]);
  assert.is(restored.code, 0, restored.out);
  app = await open();
  try {
    const d = await app.inventory.getDevice(tenantId, '0004f2bacc01');
    assert.is(d.name, 'Original');
    assert.is(d.lines[0]?.authPassword, 'pw');
    assert.is((await app.inventory.listDevices(tenantId, {}, { limit: 10, offset: 0 })).total, 1);
    assert.is(readFileSync(join(dataDir, 'uploads', tenantId, '0004f2bacc01', '0004f2bacc01-app.log'), 'utf8'), 'a log line\n');
  } finally {
    await app.close();
  }
});

test('a truncated, tampered or foreign-key backup is refused and nothing is replaced', async () => {
  const good = join(dataDir, 'backups', backups().at(-1)!);
  const work = tempDir();
  const db = join(dataDir, 'edgeprov.db');
  const before = readFileSync(db);
  const truncated = join(work, 'truncated.epbak');
  copyFileSync(good, truncated);
  truncateSync(truncated, statSync(good).size - 40);
  const tampered = join(work, 'tampered.epbak');
  const bytes = readFileSync(good);
  bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0xff;
  writeFileSync(tampered, bytes);
  const garbage = join(work, 'garbage.epbak');
  writeFileSync(garbage, 'not a backup at all');
  for (const f of [truncated, tampered, garbage]) {
    const r = await edgeprov(['restore', f]);
    assert.is(r.code, 1, `${f}: ${r.out}`);
    assert.match(r.out, /nothing was changed/);
  }
  const other = await run('npx', ['edgeprov', 'restore', good, '--data-dir', dataDir, '--master-key', 'cd'.repeat(32)], { cwd: root }).then(() => 'ok', (e) => String(e.stderr));
  assert.match(other, /made under master key/);
  assert.equal(readFileSync(db), before, 'the database was not touched');
});

test.run();
