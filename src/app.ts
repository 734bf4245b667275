import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Hono } from 'hono';
import type { TLSSocket } from 'node:tls';
import { systemClock, type Clock } from './clock.ts';
import type { Config } from './config.ts';
import { Accounts } from './domain/accounts.ts';
import { Auditor } from './domain/audit.ts';
import { Inventory } from './domain/inventory.ts';
import { Retention } from './domain/retention.ts';
import { createFirmware, type Firmware } from './firmware/service.ts';
import type { Tenant } from './domain/types.ts';
import { createAccessLogger, createLogger, type Logger } from './logger.ts';
import { createMailer } from './mail/mailer.ts';
import { ParamCatalogue } from './profiles/catalogue.ts';
import type { ServerInfo } from './profiles/render.ts';
import { ProvisioningTree } from './provisioning/tree.ts';
import { UploadStore } from './provisioning/uploads.ts';
import type { ProvisioningInfo } from './server/http/admin-api.ts';
import { createHttpApp } from './server/http/app.ts';
import type { HttpEnv } from './server/http/context.ts';
import { DeviceAuthenticator } from './server/http/device-auth.ts';
import { createDeviceHandler } from './server/http/device-routes.ts';
import { startHttp, type ListenerHandle } from './server/http/listener.ts';
import { ensureTls, hardenSocket, tlsServerOptions, type TlsMaterial } from './server/tls.ts';
import { startTftp, type TftpHandle } from './server/tftp/server.ts';
import { interfaceAddress, startDhcp, type DhcpHandle } from './server/dhcp/server.ts';
import { readdir } from 'node:fs/promises';
import { createBackup, pruneBackups, type BackupResult } from './store/backup.ts';
import type { KyselyStore } from './store/kysely-store.ts';
import { loadKeyring, type SecretBox } from './store/secrets.ts';
import { openSqliteStore } from './store/sqlite.ts';
import type { Store } from './store/store.ts';

export interface AppDeps {
  config: Config;
  clock?: Clock;
  logger?: Logger;
  /** A store to use instead of the SQLite file in the data dir. */
  store?: Store;
  accessLogger?: Logger;
}

/** Everything built, nothing bound yet. */
export interface App {
  readonly config: Config;
  readonly store: Store;
  readonly inventory: Inventory;
  readonly accounts: Accounts;
  readonly tree: ProvisioningTree;
  readonly auditor: Auditor;
  readonly retention: Retention;
  readonly firmware: Firmware;
  readonly logger: Logger;
  readonly http: Hono<HttpEnv>;
  readonly tls: TlsMaterial | undefined;
  /** Backups: take one now; `tick()` takes the daily one when it is due (driven by the clock). */
  readonly backups: Backups;
  /** Where a tenant's phones provision (URLs, credentials, DHCP values). */
  provisioningInfo(tenantId: string): Promise<ProvisioningInfo>;
  /** Binds the configured listeners. */
  listen(): Promise<RunningApp>;
  /** Closes listeners (if bound), flushes pending writes and closes the store. Idempotent. */
  close(): Promise<void>;
}

export interface RunningApp {
  readonly http: ListenerHandle | undefined;
  readonly https: ListenerHandle | undefined;
  readonly tftp: TftpHandle | undefined;
  readonly dhcp: DhcpHandle | undefined;
}

export const databaseFile = (config: Config): string => join(config.dataDir, 'edgeprov.db');
export const backupDir = (config: Config): string => (config.backup.dir ? resolve(config.dataDir, config.backup.dir) : join(config.dataDir, 'backups'));
/** Data-dir folders a backup carries besides the database. */
export const BACKUP_FOLDERS = ['uploads', 'tls'];

export interface Backups {
  readonly dir: string;
  run(onProgress?: (done: number, total: number) => void): Promise<BackupResult>;
  /** Takes the day's backup if its time has come and there is none for today yet. */
  tick(): Promise<BackupResult | undefined>;
}
export const masterKeyFile = (config: Config): string => (config.masterKeyFile ? resolve(config.dataDir, config.masterKeyFile) : join(config.dataDir, 'master.key'));

/** A configuration secret, opened when it was given sealed; a key mismatch says what to do. */
function openConfigSecret(box: SecretBox, value: string, key: string): string {
  try {
    return box.open(value);
  } catch (err) {
    throw new Error(`${key} is sealed under a master key that is not loaded (${(err as Error).message}); seal it again with: edgeprov seal`);
  }
}

/** The composition root: store, domain services and listeners, wired once. */
export async function createApp(deps: AppDeps): Promise<App> {
  const { config } = deps;
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger({ level: config.log.level });
  const accessLogger = deps.accessLogger ?? (deps.logger ? deps.logger : createAccessLogger({ level: config.log.level }));
  const keyring = loadKeyring({ masterKey: config.masterKey, keyFile: masterKeyFile(config) });
  if (keyring.source === 'generated') logger.warn({ file: masterKeyFile(config) }, 'generated a new master key; back it up apart from the data');
  const store = deps.store ?? (await openSqliteStore({ file: databaseFile(config), box: keyring.box }));
  const inventory = new Inventory({ store, clock });
  const publicHost = config.publicHosts[0] ?? hostname();
  // Bound ports replace the configured ones once listening (port 0 in tests).
  const ports = { http: config.http.port, https: config.https.port };
  const urlHost = publicHost.includes(':') ? `[${publicHost}]` : publicHost;
  const mailer = createMailer({
    smtpUrl: config.mail.smtpUrl,
    // Given sealed (`edgeprov seal`), the SMTP password sits encrypted in the configuration too.
    smtpPassword: config.mail.smtpPassword === undefined ? undefined : openConfigSecret(keyring.box, config.mail.smtpPassword, 'mail.smtpPassword'),
    from: config.mail.from,
    outboxDir: config.mail.outboxDir ? resolve(config.dataDir, config.mail.outboxDir) : join(config.dataDir, 'outbox'),
    logger,
  });
  const accounts = new Accounts({
    store,
    clock,
    scryptCost: config.auth.scryptCost,
    sessionTtlSeconds: config.api.sessionTtlSeconds,
    maxFailures: config.auth.maxFailures,
    lockoutSeconds: config.auth.lockoutSeconds,
    mailer,
    linkBase: () =>
      config.mail.linkBaseUrl ?? (config.https.enabled ? `https://${urlHost}:${ports.https}` : `http://${urlHost}:${ports.http}`),
    activationHours: config.auth.activationHours,
    resetMinutes: config.auth.resetMinutes,
    logger,
  });

  const hosts = [...new Set([...config.publicHosts, hostname(), 'localhost', '127.0.0.1', '::1'])];
  const tls = config.https.enabled
    ? ensureTls({ dataDir: config.dataDir, hosts, certFile: config.https.certFile, keyFile: config.https.keyFile, logger })
    : undefined;

  const base = (scheme: 'http' | 'https', key: string) => `${scheme}://${urlHost}:${ports[scheme]}/p/${key}/`;
  const serverInfo = (tenant: Tenant): ServerInfo => ({
    host: publicHost,
    httpBase: base('http', tenant.provisioning.key),
    httpsBase: base('https', tenant.provisioning.key),
  });

  const auditor = new Auditor({ store, clock, logger });
  const uploads = new UploadStore(join(config.dataDir, 'uploads'));
  const retention = new Retention({
    store,
    inventory,
    uploads,
    clock,
    logger,
    auditor,
    deletionGraceDays: config.retention.deletionGraceDays,
    subscriptionRetentionDays: config.retention.subscriptionRetentionDays,
  });
  const firmware = await createFirmware({
    dataDir: config.dataDir,
    store,
    clock,
    logger,
    maxImageBytes: config.firmware.maxImageBytes,
    maxConcurrent: config.firmware.maxConcurrent,
    maxPerSite: config.firmware.maxPerSite,
  });
  const tree = new ProvisioningTree({
    firmware: firmware.plan,
    firmwareFiles: firmware.files,
    store,
    inventory,
    catalogue: ParamCatalogue.load(),
    uploads,
    clock,
    logger,
    server: serverInfo,
    caPem: () => tls?.caPem,
  });

  const provisioningInfo = async (tenantId: string): Promise<ProvisioningInfo> => {
    const t = await inventory.tenantSecrets(tenantId);
    const httpBase = config.http.enabled ? base('http', t.provisioning.key) : null;
    const httpsBase = config.https.enabled ? base('https', t.provisioning.key) : null;
    const preferred = (httpsBase ?? httpBase) as string;
    const withCreds = preferred.replace('://', `://${t.provisioning.username}:${t.provisioningPassword}@`);
    return {
      httpBase,
      httpsBase,
      username: t.provisioning.username,
      password: t.provisioningPassword,
      previousPasswordValidUntil: t.previousValidUntil && t.previousValidUntil > clock.now().toISOString() ? t.previousValidUntil : null,
      caUrl: tls?.caPem && httpBase ? `${httpBase}ca.crt` : null,
      dhcp: { option160: withCreds, option66: withCreds, option160WithoutCredentials: preferred },
    };
  };

  let defaultKey: string | undefined;
  const slug = config.provisioning.defaultTenant;
  const http = createHttpApp({
    store,
    inventory,
    accounts,
    logger,
    accessLogger,
    tree,
    uploads,
    provisioningInfo,
    rotationGraceSeconds: config.provisioning.rotationGraceSeconds,
    auditor,
    maxPageSize: config.api.maxPageSize,
    maxBodyBytes: config.api.maxBodyBytes,
    dhcpLeases: store.dhcpLeases,
    clock,
    retention,
    firmware,
    firmwareMaxBundleBytes: config.firmware.maxImageBytes * 4,
  });
  const deviceHandler = createDeviceHandler({
    tree,
    auth: new DeviceAuthenticator({ clock }),
    firmwareLimiter: firmware.limiter,
    clock,
    logger,
    accessLogger,
    defaultTenantKey: slug ? async () => (defaultKey ??= (await store.tenants.getBySlug(slug))?.provisioning.key) : undefined,
  });

  const backups: Backups = {
    dir: backupDir(config),
    async run(onProgress) {
      const r = await createBackup(
        { snapshot: (to) => (store as KyselyStore).snapshot(to), dataDir: config.dataDir, folders: BACKUP_FOLDERS },
        keyring.box.primaryKey,
        backupDir(config),
        clock.now(),
        onProgress,
      );
      const pruned = await pruneBackups(backupDir(config), config.backup.keep);
      logger.info({ file: r.file, bytes: r.bytes, files: r.files, pruned }, 'backup written');
      return r;
    },
    async tick() {
      const now = clock.now();
      const [hh = 0, mm = 0] = config.backup.time.split(':').map(Number);
      const due = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), hh, mm));
      if (now < due) return undefined;
      const today = due.toISOString().slice(0, 10).replace(/-/g, '');
      const names = await readdir(backupDir(config)).catch(() => [] as string[]);
      if (names.some((n) => n.startsWith(`edgeprov-${today}T`) && n.endsWith('.epbak'))) return undefined;
      return this.run();
    },
  };
  let backupTimer: NodeJS.Timeout | undefined;
  let pruneTimer: NodeJS.Timeout | undefined;

  const handles: ListenerHandle[] = [];
  let closing: Promise<void> | undefined;

  return {
    config,
    store,
    inventory,
    accounts,
    tree,
    auditor,
    retention,
    firmware,
    logger,
    http,
    tls,
    provisioningInfo,
    backups,
    async listen() {
      if (config.backup.enabled) {
        backupTimer = setInterval(() => {
          backups.tick().catch((err: unknown) => logger.error({ err }, 'daily backup failed'));
        }, 60_000);
        backupTimer.unref();
      }
      // Expired and revoked sign-in tokens are dropped a day after they stopped working.
      // Hourly housekeeping: expired sign-in tokens; tenants whose grace or retention period ended.
      const hourly = () => {
        const before = new Date(clock.now().getTime() - 86_400_000).toISOString();
        store.tokens.prune(before).catch((err: unknown) => logger.warn({ err }, 'could not prune old tokens'));
        retention.tick().catch((err: unknown) => logger.error({ err }, 'retention run failed'));
      };
      pruneTimer = setInterval(hourly, 3_600_000);
      setImmediate(hourly).unref();
      pruneTimer.unref();
      let httpHandle: ListenerHandle | undefined;
      let httpsHandle: ListenerHandle | undefined;
      if (config.http.enabled) {
        httpHandle = await startHttp({ host: config.host, port: config.http.port, deviceHandler }, http);
        handles.push(httpHandle);
        ports.http = httpHandle.address.port;
        logger.info({ address: httpHandle.address }, 'HTTP listening');
      }
      if (tls) {
        httpsHandle = await startHttp(
          { host: config.host, port: config.https.port, tls: tlsServerOptions(tls), deviceHandler, onSecureConnection: hardenSocket as (s: TLSSocket) => void },
          http,
        );
        handles.push(httpsHandle);
        ports.https = httpsHandle.address.port;
        logger.info({ address: httpsHandle.address }, 'HTTPS listening');
      }
      let tftpHandle: TftpHandle | undefined;
      if (config.tftp.enabled) {
        tftpHandle = await startTftp({ host: config.host, port: config.tftp.port, pump: config.tftp.pump }, { tree, logger, firmwareLimiter: firmware.limiter });
        handles.push({ address: tftpHandle.address, close: () => (tftpHandle as TftpHandle).close() });
        logger.info({ address: tftpHandle.address, firmwarePump: tftpHandle.pump, ...(tftpHandle.pumpUnavailable && { why: tftpHandle.pumpUnavailable }) }, 'TFTP listening');
      }
      let dhcpHandle: DhcpHandle | undefined;
      if (config.dhcp.enabled) {
        const serverAddress = config.dhcp.address ?? (config.dhcp.interface ? interfaceAddress(config.dhcp.interface) : undefined);
        if (!serverAddress) {
          throw new Error(
            config.dhcp.interface
              ? `dhcp: interface ${config.dhcp.interface} has no IPv4 address`
              : 'dhcp: set dhcp.interface (or dhcp.address) to the segment the built-in DHCP server serves',
          );
        }
        const dhcp = await startDhcp(
          { host: '0.0.0.0', port: config.dhcp.port, serverAddress, declineSeconds: config.dhcp.declineSeconds },
          {
            store,
            inventory,
            clock,
            logger,
            provisioningUrl: async (tenantId, withCredentials) => {
              const info = await provisioningInfo(tenantId);
              return withCredentials ? info.dhcp.option160 : info.dhcp.option160WithoutCredentials;
            },
          },
        );
        dhcpHandle = dhcp;
        handles.push({ address: dhcp.address, close: () => dhcp.close() });
        logger.info({ address: dhcp.address, serverAddress }, 'DHCP listening');
      }
      return { http: httpHandle, https: httpsHandle, tftp: tftpHandle, dhcp: dhcpHandle };
    },
    close() {
      closing ??= (async () => {
        clearInterval(backupTimer);
        clearInterval(pruneTimer);
        await Promise.all(handles.map((h) => h.close()));
        await tree.close();
        await store.close();
        mailer.close();
        accessLogger.flush();
      })();
      return closing;
    },
  };
}
