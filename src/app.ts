import { join } from 'node:path';
import type { Hono } from 'hono';
import { systemClock, type Clock } from './clock.ts';
import type { Config } from './config.ts';
import { Accounts } from './domain/accounts.ts';
import { Inventory } from './domain/inventory.ts';
import { createLogger, type Logger } from './logger.ts';
import { createHttpApp } from './server/http/app.ts';
import type { HttpEnv } from './server/http/context.ts';
import { startHttp, type ListenerHandle } from './server/http/listener.ts';
import { openSqliteStore } from './store/sqlite.ts';
import type { Store } from './store/store.ts';

export interface AppDeps {
  config: Config;
  clock?: Clock;
  logger?: Logger;
  /** A store to use instead of the SQLite file in the data dir. */
  store?: Store;
}

/** Everything built, nothing bound yet. */
export interface App {
  readonly config: Config;
  readonly store: Store;
  readonly inventory: Inventory;
  readonly accounts: Accounts;
  readonly logger: Logger;
  readonly http: Hono<HttpEnv>;
  /** Binds the configured listeners. */
  listen(): Promise<RunningApp>;
  /** Closes listeners (if bound) and the store. Idempotent. */
  close(): Promise<void>;
}

export interface RunningApp {
  readonly http: ListenerHandle | undefined;
}

export const databaseFile = (config: Config): string => join(config.dataDir, 'edgeprov.db');

/** The composition root: store, domain services and listeners, wired once. */
export async function createApp(deps: AppDeps): Promise<App> {
  const { config } = deps;
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger({ level: config.log.level });
  const store = deps.store ?? (await openSqliteStore({ file: databaseFile(config) }));
  const inventory = new Inventory({ store, clock });
  const accounts = new Accounts({
    store,
    clock,
    scryptCost: config.auth.scryptCost,
    sessionTtlSeconds: config.api.sessionTtlSeconds,
    maxFailures: config.auth.maxFailures,
    lockoutSeconds: config.auth.lockoutSeconds,
  });
  const http = createHttpApp({
    store,
    inventory,
    accounts,
    logger,
    maxPageSize: config.api.maxPageSize,
    maxBodyBytes: config.api.maxBodyBytes,
  });

  const handles: ListenerHandle[] = [];
  let closing: Promise<void> | undefined;

  return {
    config,
    store,
    inventory,
    accounts,
    logger,
    http,
    async listen() {
      let httpHandle: ListenerHandle | undefined;
      if (config.http.enabled) {
        httpHandle = await startHttp({ host: config.host, port: config.http.port }, http);
        handles.push(httpHandle);
        logger.info({ address: httpHandle.address }, 'HTTP listening');
      }
      return { http: httpHandle };
    },
    close() {
      closing ??= (async () => {
        await Promise.all(handles.map((h) => h.close()));
        await store.close();
      })();
      return closing;
    },
  };
}
