import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CONFIG_LEAVES, ConfigError, loadConfig, maskConfig } from '../../src/config.ts';
import { tempDir } from '../helpers/app.ts';

test('defaults are unprivileged', () => {
  const c = loadConfig({ env: {}, cwd: '/srv' });
  assert.is(c.dataDir, '/srv/data');
  assert.is(c.host, '0.0.0.0');
  assert.is(c.http.port, 8080);
  assert.is(c.https.port, 8443);
  assert.is(c.tftp.port, 6969);
});

test('defaults < file < environment < flags', () => {
  const dir = tempDir();
  const file = join(dir, 'edgeprov.json');
  writeFileSync(file, JSON.stringify({ http: { port: 1000 }, https: { port: 1001 }, tftp: { port: 1002 }, host: '127.0.0.2' }));
  const c = loadConfig({
    cwd: dir,
    env: { EDGEPROV_CONFIG: 'edgeprov.json', EDGEPROV_HTTPS_PORT: '2001', EDGEPROV_TFTP_PORT: '2002', EDGEPROV_DATA_DIR: '/var/lib/edgeprov' },
    flags: { 'tftp-port': '3002' },
  });
  assert.is(c.host, '127.0.0.2');
  assert.is(c.http.port, 1000);
  assert.is(c.https.port, 2001);
  assert.is(c.tftp.port, 3002);
  assert.is(c.dataDir, '/var/lib/edgeprov');
});

test('the configuration is frozen', () => {
  const c = loadConfig({ env: {} });
  assert.throws(() => {
    (c.http as { port: number }).port = 1;
  });
  assert.ok(Object.isFrozen(c.api));
});

test('an invalid configuration lists every problem with its source', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ http: { port: 'eighty', colour: 1 }, log: { level: 'loud' } }));
  try {
    loadConfig({ cwd: dir, file: 'bad.json', env: { EDGEPROV_HTTPS_PORT: '70000', EDGEPROV_HTTP_ENABLED: 'maybe' }, flags: { 'no-such-flag': '1' } });
    assert.unreachable('should throw');
  } catch (err) {
    assert.instance(err, ConfigError);
    const p = (err as ConfigError).problems.join('\n');
    for (const needle of ['--no-such-flag', 'https.port', 'EDGEPROV_HTTPS_PORT', 'http.enabled', 'http.port', 'colour', 'log.level']) {
      assert.ok(p.includes(needle), `missing ${needle} in\n${p}`);
    }
  }
  assert.throws(() => loadConfig({ file: '/nonexistent/edgeprov.json', env: {} }), /nonexistent/);
});

test('unknown EDGEPROV_ variables warn', () => {
  const warnings: string[] = [];
  loadConfig({ env: { EDGEPROV_HTTP_PORTT: '1', EDGEPROV_TEST_STRICT: '1' }, warn: (m) => warnings.push(m) });
  assert.equal(warnings, ['unknown environment variable EDGEPROV_HTTP_PORTT ignored']);
});

test('every leaf has an env name and a flag', () => {
  const envs = CONFIG_LEAVES.map((l) => l.env);
  for (const e of ['EDGEPROV_DATA_DIR', 'EDGEPROV_HTTP_PORT', 'EDGEPROV_HTTPS_PORT', 'EDGEPROV_TFTP_PORT', 'EDGEPROV_HOST']) assert.ok(envs.includes(e), e);
  assert.ok(CONFIG_LEAVES.some((l) => l.flag === 'data-dir'));
});

test('masking hides secrets only', () => {
  assert.equal(maskConfig({ smtp: { password: 'x', host: 'h' }, masterKey: 'k', port: 1 }), { smtp: { password: '***', host: 'h' }, masterKey: '***', port: 1 });
});

test.run();
