import { readFileSync } from 'node:fs';
import { createApp, type App } from './app.ts';
import type { Tenant } from './domain/types.ts';
import { CONFIG_LEAVES, ConfigError, loadConfig, maskConfig, type Config } from './config.ts';
import { AppError } from './errors.ts';
import { createLogger } from './logger.ts';

const HELP = `edgeprov — provisioning server for Polycom (Poly) phones

Usage: edgeprov <command> [options]

Commands:
  serve                         run the server (the default)
  init --email E [--password P | --password-stdin] [--name N]
                                create the first system administrator on an empty database
  config                        print the effective configuration, secrets masked
  backup                        write an encrypted backup now (into backup.dir)
  restore FILE                  verify a backup completely, then restore it (stop the server first)
  rotate-key [--new-key KEY]    re-seal every stored secret under a new master key (stop the server first)
  seal                          seal a secret read from stdin under the master key (for mail.smtpPassword)
  dhcp-snippet --tenant T --site S --server isc|kea|dnsmasq|windows|mikrotik [--polycom-only]
                                DHCP server configuration for a site's option 160/66
  anonymize --tenant T [--device MAC] --yes
                                irreversibly replace the personal data of a tenant or one device
  purge                         purge tenants whose deletion grace or retention period has ended
  firmware add PATH --version V [--models M1,M2]
                                add an image (<part>.sip.ld, sip.ld), a folder of them or a release .zip
  firmware list                 the catalogue: versions, part numbers, models, sizes
  phone-sim --url BASE --mac M [--user U --password P] [--ca FILE] [--model VVX500]
                                boot one simulated Polycom phone against a provisioning base URL
  help                          this text

Every command takes --config FILE (or EDGEPROV_CONFIG) and any configuration flag:
${CONFIG_LEAVES.map((l) => `  --${l.flag.padEnd(28)} ${l.env}`).join('\n')}
`;

interface ParsedArgs {
  command: string;
  configFile: string | undefined;
  configFlags: Record<string, string>;
  own: Record<string, string | true>;
  problems: string[];
}

const COMMAND_FLAGS: Record<string, { values: string[]; switches: string[] }> = {
  serve: { values: [], switches: [] },
  init: { values: ['email', 'password', 'name'], switches: ['password-stdin'] },
  config: { values: [], switches: [] },
  help: { values: [], switches: [] },
  backup: { values: [], switches: [] },
  restore: { values: [], switches: [] },
  'rotate-key': { values: ['new-key'], switches: [] },
  seal: { values: [], switches: [] },
  'dhcp-snippet': { values: ['tenant', 'site', 'server'], switches: ['polycom-only', 'no-credentials'] },
  anonymize: { values: ['tenant', 'device'], switches: ['yes'] },
  purge: { values: [], switches: [] },
  firmware: { values: ['version', 'models'], switches: [] },
  'phone-sim': { values: ['url', 'mac', 'user', 'password', 'ca', 'model', 'firmware'], switches: [] },
};

export function parseArgs(argv: string[]): ParsedArgs {
  const out: ParsedArgs = { command: 'serve', configFile: undefined, configFlags: {}, own: {}, problems: [] };
  const rest = [...argv];
  if (rest[0] && !rest[0].startsWith('-')) out.command = rest.shift() as string;
  if (out.command === '--help' || out.command === '-h') out.command = 'help';
  const spec = COMMAND_FLAGS[out.command];
  if (!spec) {
    out.problems.push(`unknown command "${out.command}" (try: edgeprov help)`);
    return out;
  }
  const configFlags = new Set(CONFIG_LEAVES.map((l) => l.flag));
  while (rest.length) {
    const arg = rest.shift() as string;
    if (arg === '--help' || arg === '-h') {
      out.command = 'help';
      continue;
    }
    const m = arg.match(/^--([a-z0-9-]+)(?:=(.*))?$/s);
    if (!m?.[1] && out.command === 'restore' && out.own.file === undefined) {
      out.own.file = arg;
      continue;
    }
    // firmware add PATH | firmware list
    if (!m?.[1] && out.command === 'firmware' && (out.own.action === undefined || out.own.file === undefined)) {
      if (out.own.action === undefined) out.own.action = arg;
      else out.own.file = arg;
      continue;
    }
    if (!m?.[1]) {
      out.problems.push(`unexpected argument "${arg}"`);
      continue;
    }
    const name = m[1];
    const isSwitch = spec.switches.includes(name);
    let value: string | undefined = m[2];
    if (!isSwitch && value === undefined) {
      value = rest.shift();
      if (value === undefined) {
        out.problems.push(`--${name} needs a value`);
        continue;
      }
    }
    if (name === 'config') out.configFile = value;
    else if (configFlags.has(name)) out.configFlags[name] = value as string;
    else if (isSwitch) out.own[name] = true;
    else if (spec.values.includes(name)) out.own[name] = value as string;
    else out.problems.push(`--${name}: unknown option for "${out.command}"`);
  }
  return out;
}

export interface MainIo {
  env: Record<string, string | undefined>;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  readStdin: () => string;
}

const defaultIo = (): MainIo => ({
  env: process.env,
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  readStdin: () => readFileSync(0, 'utf8'),
});

/** Runs one CLI command; resolves to the process exit code. */
export async function main(argv: string[], io: MainIo = defaultIo()): Promise<number> {
  const args = parseArgs(argv);
  if (args.problems.length) {
    io.stderr(`${args.problems.map((p) => `edgeprov: ${p}`).join('\n')}\n`);
    return 2;
  }
  if (args.command === 'help') {
    io.stdout(HELP);
    return 0;
  }
  if (args.command === 'phone-sim') return runPhoneSim(args.own, io);
  let config: Config;
  try {
    config = loadConfig({
      env: io.env,
      flags: args.configFlags,
      ...(args.configFile !== undefined && { file: args.configFile }),
      warn: (m) => io.stderr(`edgeprov: warning: ${m}\n`),
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`edgeprov: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  switch (args.command) {
    case 'config':
      io.stdout(`${JSON.stringify(maskConfig(config), null, 2)}\n`);
      return 0;
    case 'init':
      return runInit(config, args.own, io);
    case 'dhcp-snippet':
      return runDhcpSnippet(config, args.own, io);
    case 'rotate-key':
      return runRotateKey(config, args.own, io);
    case 'seal': {
      const { loadKeyring } = await import('./store/secrets.ts');
      const { masterKeyFile } = await import('./app.ts');
      const secret = io.readStdin().replace(/\r?\n$/, '');
      if (!secret) {
        io.stderr('edgeprov: seal reads the secret from stdin: printf %s "$SMTP_PASSWORD" | edgeprov seal\n');
        return 2;
      }
      io.stdout(`${loadKeyring({ masterKey: config.masterKey, keyFile: masterKeyFile(config) }).box.seal(secret)}\n`);
      return 0;
    }
    case 'backup':
      return runBackup(config, io);
    case 'restore':
      return runRestore(config, args.own, io);
    case 'anonymize':
      return runAnonymize(config, args.own, io);
    case 'purge':
      return runPurge(config, io);
    case 'firmware':
      return runFirmware(config, args.own, io);
    default:
      return runServe(config, io);
  }
}

async function runInit(config: Config, own: Record<string, string | true>, io: MainIo): Promise<number> {
  const email = typeof own.email === 'string' ? own.email : io.env.EDGEPROV_INIT_EMAIL;
  let password = typeof own.password === 'string' ? own.password : io.env.EDGEPROV_INIT_PASSWORD;
  if (own['password-stdin']) password = io.readStdin().replace(/\r?\n$/, '');
  if (!email || !password) {
    io.stderr('edgeprov: init needs --email and --password (or --password-stdin, or EDGEPROV_INIT_EMAIL / EDGEPROV_INIT_PASSWORD)\n');
    return 2;
  }
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
    io.stderr(`edgeprov: "${email}" is not an email address\n`);
    return 2;
  }
  const app = await createApp({ config, logger: createLogger({ level: 'warn' }) });
  try {
    const user = await app.accounts.init({ email, password, ...(typeof own.name === 'string' && { name: own.name }) });
    await app.auditor.record({ tenantId: null, actorId: null, actor: 'cli', ip: null, action: 'cli.init', target: 'users', outcome: 'success', after: user });
    io.stdout(`created system administrator ${user.email} (id ${user.id})\n`);
    return 0;
  } catch (err) {
    if (err instanceof AppError) {
      const details = err.details?.map((d) => `\n  - ${d.path}: ${d.message}`).join('') ?? '';
      io.stderr(`edgeprov: ${err.message}${details}\n`);
      return 1;
    }
    throw err;
  } finally {
    await app.close();
  }
}

function progress(io: MainIo, label: string): (done: number, total: number) => void {
  let last = -1;
  return (done, total) => {
    const pct = total ? Math.floor((done / total) * 100) : 100;
    if (pct === last) return;
    last = pct;
    const bar = '#'.repeat(Math.floor(pct / 5)).padEnd(20, '-');
    io.stderr(`\r${label} [${bar}] ${String(pct).padStart(3)}%  ${(done / 1e6).toFixed(1)}/${(total / 1e6).toFixed(1)} MB${pct === 100 ? '\n' : ''}`);
  };
}

async function runBackup(config: Config, io: MainIo): Promise<number> {
  const app = await createApp({ config, logger: createLogger({ level: 'warn' }) });
  try {
    const r = await app.backups.run(progress(io, 'backup'));
    io.stdout(`wrote ${r.file} (${r.files} files, ${r.bytes} bytes)\n`);
    return 0;
  } finally {
    await app.close();
  }
}

async function runRestore(config: Config, own: Record<string, string | true>, io: MainIo): Promise<number> {
  const file = own.file;
  if (typeof file !== 'string') {
    io.stderr('edgeprov: restore needs the backup file: edgeprov restore FILE\n');
    return 2;
  }
  const { BackupError, restoreBackup } = await import('./store/backup.ts');
  const { loadKeyring } = await import('./store/secrets.ts');
  const { BACKUP_FOLDERS, masterKeyFile } = await import('./app.ts');
  const { box } = loadKeyring({ masterKey: config.masterKey, keyFile: masterKeyFile(config) });
  try {
    io.stderr('restore: verifying the whole backup before replacing anything…\n');
    const r = await restoreBackup(file, box.primaryKey, config.dataDir, BACKUP_FOLDERS);
    io.stdout(`restored ${r.files} files from the backup of ${r.header.createdAt}\n`);
    return 0;
  } catch (err) {
    if (err instanceof BackupError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      io.stderr(`edgeprov: ${(err as Error).message}; nothing was changed\n`);
      return 1;
    }
    throw err;
  }
}

async function runRotateKey(config: Config, own: Record<string, string | true>, io: MainIo): Promise<number> {
  const { randomBytes } = await import('node:crypto');
  const { existsSync, renameSync } = await import('node:fs');
  const { SecretBox, keyId, loadKeyring, parseKey, writeKeyFile } = await import('./store/secrets.ts');
  const { openSqliteStore } = await import('./store/sqlite.ts');
  const { databaseFile, masterKeyFile } = await import('./app.ts');
  let next: Buffer;
  try {
    next = typeof own['new-key'] === 'string' ? parseKey(own['new-key']) : randomBytes(32);
  } catch (err) {
    io.stderr(`edgeprov: ${(err as Error).message}\n`);
    return 2;
  }
  if (config.masterKey && typeof own['new-key'] !== 'string') {
    io.stderr('edgeprov: the master key comes from EDGEPROV_MASTER_KEY: pass --new-key, then set EDGEPROV_MASTER_KEY to it\n');
    return 2;
  }
  const file = masterKeyFile(config);
  if (!config.masterKey && !existsSync(file)) {
    io.stderr(`edgeprov: no master key at ${file}: nothing to rotate\n`);
    return 1;
  }
  // The new key is on disk before anything is sealed under it, so an interrupted rotation loses nothing.
  if (!config.masterKey) writeKeyFile(`${file}.next`, next);
  const current = loadKeyring({ masterKey: config.masterKey, keyFile: file });
  const store = await openSqliteStore({ file: databaseFile(config), box: current.box });
  try {
    const n = await store.reseal(new SecretBox([next]));
    if (!config.masterKey) renameSync(`${file}.next`, file);
    io.stdout(`re-sealed ${n} secret(s) under master key ${keyId(next)}${config.masterKey ? '; now set EDGEPROV_MASTER_KEY to the new key' : ` (${file})`}\n`);
    return 0;
  } finally {
    await store.close();
  }
}

/** A tenant by slug or id, or `undefined` after saying so on stderr. */
async function findTenant(app: App, ref: string, io: MainIo): Promise<Tenant | undefined> {
  const tenant = (await app.store.tenants.getBySlug(ref)) ?? (await app.store.tenants.get(ref));
  if (!tenant) io.stderr(`edgeprov: no tenant "${ref}" (slug or id)\n`);
  return tenant;
}

async function runDhcpSnippet(config: Config, own: Record<string, string | true>, io: MainIo): Promise<number> {
  const { DHCP_SERVERS, dhcpSnippet } = await import('./provisioning/dhcp-snippets.ts');
  const server = own.server;
  if (typeof own.tenant !== 'string' || typeof own.site !== 'string' || typeof server !== 'string' || !(DHCP_SERVERS as readonly string[]).includes(server)) {
    io.stderr(`edgeprov: dhcp-snippet needs --tenant, --site and --server (${DHCP_SERVERS.join(', ')})\n`);
    return 2;
  }
  const app = await createApp({ config, logger: createLogger({ level: 'warn' }) });
  try {
    const tenant = await findTenant(app, own.tenant, io);
    if (!tenant) return 1;
    const sites = await app.store.sites.all(tenant.id);
    const site = sites.find((s) => s.id === own.site || s.name.toLowerCase() === (own.site as string).toLowerCase());
    if (!site) {
      io.stderr(`edgeprov: tenant ${tenant.slug} has no site "${own.site}" (name or id)\n`);
      return 1;
    }
    const info = await app.provisioningInfo(tenant.id);
    const url = own['no-credentials'] ? info.dhcp.option160WithoutCredentials : info.dhcp.option160;
    io.stdout(dhcpSnippet(server as (typeof DHCP_SERVERS)[number], { tenant, site, url, polycomOnly: own['polycom-only'] === true }));
    return 0;
  } finally {
    await app.close();
  }
}

async function runAnonymize(config: Config, own: Record<string, string | true>, io: MainIo): Promise<number> {
  if (typeof own.tenant !== 'string') {
    io.stderr('edgeprov: anonymize needs --tenant SLUG (and --device MAC for one device)\n');
    return 2;
  }
  if (own.yes !== true) {
    io.stderr('edgeprov: anonymization cannot be undone; add --yes to go ahead\n');
    return 2;
  }
  const app = await createApp({ config, logger: createLogger({ level: 'warn' }) });
  try {
    const tenant = await findTenant(app, own.tenant, io);
    if (!tenant) return 1;
    const by = { actorId: null, actor: 'cli', ip: null };
    const r = typeof own.device === 'string' ? await app.retention.anonymizeDevice(tenant.id, own.device, by) : await app.retention.anonymizeTenant(tenant.id, tenant.slug, by);
    io.stdout(`anonymized ${typeof own.device === 'string' ? `device ${own.device}` : `tenant ${tenant.id}`}: ${r.values} value(s) replaced, ${r.files} uploaded file(s) rewritten\n`);
    return 0;
  } catch (err) {
    if (err instanceof AppError) {
      io.stderr(`edgeprov: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await app.close();
  }
}

async function runFirmware(config: Config, own: Record<string, string | true>, io: MainIo): Promise<number> {
  const action = own.action;
  if (action !== 'add' && action !== 'list') {
    io.stderr('edgeprov: firmware add PATH --version V [--models M1,M2] | firmware list\n');
    return 2;
  }
  const app = await createApp({ config, logger: createLogger({ level: 'warn' }) });
  try {
    const cat = app.firmware.catalogue;
    if (action === 'list') {
      for (const v of await cat.versions()) {
        io.stdout(`${v.version}\n`);
        for (const i of v.images) io.stdout(`  ${i.fileName.padEnd(24)} ${i.models.join(',').padEnd(16)} ${String(i.size).padStart(11)}  ${i.sha256}\n`);
      }
      return 0;
    }
    const file = own.file;
    const version = own.version;
    if (typeof file !== 'string' || typeof version !== 'string') {
      io.stderr('edgeprov: firmware add needs PATH and --version V\n');
      return 2;
    }
    const { stat } = await import('node:fs/promises');
    const { createReadStream } = await import('node:fs');
    const { basename } = await import('node:path');
    const st = await stat(file).catch(() => undefined);
    if (!st) {
      io.stderr(`edgeprov: ${file}: no such file or folder\n`);
      return 1;
    }
    const bar = (name: string) => progress(io, name);
    const bars = new Map<string, (d: number, t: number) => void>();
    const each = (name: string, done: number, total: number) => {
      if (!bars.has(name)) bars.set(name, bar(name));
      (bars.get(name) as (d: number, t: number) => void)(done, total);
    };
    const models = typeof own.models === 'string' ? own.models.split(',').map((m) => m.trim()).filter(Boolean) : undefined;
    const images = st.isDirectory()
      ? await cat.addFolder(version, file, each)
      : file.toLowerCase().endsWith('.zip')
        ? await cat.addZip(version, file, each)
        : [await cat.add(version, basename(file), createReadStream(file), { ...(models && { models }), expectedBytes: st.size, onProgress: (d) => each(basename(file), d, st.size) })];
    for (const i of images) io.stdout(`added ${i.version} ${i.fileName} (${i.models.join(', ') || 'all models'}) ${i.size} bytes sha256 ${i.sha256}\n`);
    return 0;
  } catch (err) {
    if (err instanceof AppError) {
      io.stderr(`edgeprov: ${err.message}${err.details?.length ? `: ${err.details.map((d) => d.message).join('; ')}` : ''}\n`);
      return 1;
    }
    throw err;
  } finally {
    await app.close();
  }
}

async function runPurge(config: Config, io: MainIo): Promise<number> {
  const app = await createApp({ config, logger: createLogger({ level: 'warn' }) });
  try {
    const done = await app.retention.tick();
    io.stdout(done.length ? done.map((d) => `purged tenant ${d.tenantId} (${d.reason})\n`).join('') : 'nothing to purge\n');
    return 0;
  } finally {
    await app.close();
  }
}

async function runPhoneSim(own: Record<string, string | true>, io: MainIo): Promise<number> {
  const str = (k: string): string | undefined => (typeof own[k] === 'string' ? (own[k] as string) : undefined);
  const url = str('url');
  const mac = str('mac');
  if (!url || !mac) {
    io.stderr('edgeprov: phone-sim needs --url and --mac\n');
    return 2;
  }
  const { bootPhone } = await import('./sim/phone.ts');
  const ca = str('ca');
  const report = await bootPhone({
    base: url,
    mac,
    ...(str('user') !== undefined && { username: str('user') as string }),
    ...(str('password') !== undefined && { password: str('password') as string }),
    ...(ca && { ca: readFileSync(ca, 'utf8') }),
    ...(str('model') && { model: str('model') as string }),
    ...(str('firmware') && { firmware: str('firmware') as string }),
  });
  for (const r of report.requests) io.stdout(`${r.method.padEnd(4)} ${String(r.status)} ${String(r.bytes).padStart(7)} B  ${r.name}\n`);
  io.stdout(`master: ${report.master}; CONFIG_FILES: ${report.configFiles.join(', ') || '(none)'}\n`);
  const failed = report.master === 'none' || report.requests.some((r) => r.status >= 500 || r.status === 401);
  return failed ? 1 : 0;
}

async function runServe(config: Config, io: MainIo): Promise<number> {
  const app = await createApp({ config });
  const email = io.env.EDGEPROV_INIT_EMAIL;
  const password = io.env.EDGEPROV_INIT_PASSWORD;
  if (email && password && (await app.store.users.countByRole('system-admin')) === 0) {
    const user = await app.accounts.init({ email, password });
    app.logger.info({ email: user.email }, 'created the first system administrator from EDGEPROV_INIT_EMAIL');
  }
  try {
    await app.listen();
  } catch (err) {
    app.logger.fatal({ err }, 'cannot start listeners');
    await app.close();
    return 1;
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      app.logger.info({ signal }, 'shutting down');
      app.close().then(
        () => resolve(0),
        (err: unknown) => {
          app.logger.error({ err }, 'error during shutdown');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

// Run directly (`node --import tsx src/main.ts`), not when imported by the bin or tests.
if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
