import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { KyselyStore } from './kysely-store.ts';
import { migrateToLatest } from './migrations.ts';
import type { Database } from './schema.ts';
import type { SecretBox } from './secrets.ts';
import type { KyselyStore as Store } from './kysely-store.ts';

export interface SqliteStoreOptions {
  /** Database file; `:memory:` for a throw-away store. */
  file: string;
  /** Seals secrets at rest. */
  box: SecretBox;
}

/**
 * Opens (creating if needed) the embedded SQLite database: WAL journal so readers never wait for
 * the writer, foreign keys on, `synchronous=FULL` so a committed change survives a power cut too
 * (admin writes are few; the phone path batches its own), `secure_delete` so removed data is
 * really gone from the file, then applies pending migrations.
 */
export async function openSqliteStore(opts: SqliteStoreOptions): Promise<Store> {
  if (opts.file !== ':memory:') mkdirSync(dirname(opts.file), { recursive: true });
  const sqlite = new BetterSqlite3(opts.file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  // Deleted and replaced content is overwritten, not left in free pages (deletion, anonymization).
  sqlite.pragma('secure_delete = ON');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  try {
    await migrateToLatest(db as Kysely<unknown>);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  let closed = false;
  return new KyselyStore(
    'sqlite',
    db,
    async () => {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
    opts.box,
  );
}
