import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';

/**
 * Versioned schema migrations, applied in name order at start-up. Never edit a migration that has
 * shipped: add the next one. Written with Kysely's schema builder so PostgreSQL runs them too.
 */
const migrations: Record<string, Migration> = {
  '0001_foundation': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('tenants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('slug', 'text', (c) => c.notNull().unique())
        .addColumn('prov_key', 'text', (c) => c.notNull().unique())
        .addColumn('prov_username', 'text', (c) => c.notNull())
        .addColumn('prov_password', 'text', (c) => c.notNull())
        .addColumn('settings', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('sites')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('location', 'text', (c) => c.notNull())
        .addColumn('subnets', 'text', (c) => c.notNull())
        .addColumn('time_zone', 'text', (c) => c.notNull())
        .addColumn('sip', 'text', (c) => c.notNull())
        .addColumn('ntp', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('sites_tenant_name', ['tenant_id', 'name'])
        .execute();

      await db.schema
        .createTable('device_groups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('groups_tenant_name', ['tenant_id', 'name'])
        .execute();

      await db.schema
        .createTable('devices')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('mac', 'text', (c) => c.notNull().unique())
        .addColumn('model', 'text')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('site_id', 'text', (c) => c.references('sites.id').onDelete('restrict'))
        .addColumn('labels', 'text', (c) => c.notNull())
        .addColumn('lines', 'text', (c) => c.notNull())
        .addColumn('params', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('last_seen_at', 'text')
        .addColumn('last_ip', 'text')
        .addColumn('last_user_agent', 'text')
        .addColumn('last_firmware', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('devices_tenant').on('devices').columns(['tenant_id', 'created_at']).execute();
      await db.schema.createIndex('devices_site').on('devices').columns(['tenant_id', 'site_id']).execute();

      await db.schema
        .createTable('group_members')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id').onDelete('cascade'))
        .addColumn('group_id', 'text', (c) => c.notNull().references('device_groups.id').onDelete('cascade'))
        .addPrimaryKeyConstraint('group_members_pk', ['device_id', 'group_id'])
        .execute();
      await db.schema.createIndex('group_members_group').on('group_members').column('group_id').execute();

      await db.schema
        .createTable('profiles')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('params', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('profiles_tenant_name', ['tenant_id', 'name'])
        .execute();

      await db.schema
        .createTable('profile_assignments')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('target_kind', 'text', (c) => c.notNull())
        .addColumn('target_id', 'text', (c) => c.notNull())
        .addColumn('profile_id', 'text', (c) => c.notNull().references('profiles.id').onDelete('restrict'))
        .addColumn('position', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('profile_assignments_pk', ['target_kind', 'target_id', 'profile_id'])
        .execute();
      await db.schema
        .createIndex('profile_assignments_profile')
        .on('profile_assignments')
        .column('profile_id')
        .execute();

      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.references('tenants.id').onDelete('cascade'))
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('password_hash', 'text')
        .addColumn('password_changed_at', 'text')
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('tenant_id', 'text', (c) => c.references('tenants.id').onDelete('cascade'))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text')
        .addColumn('last_used_at', 'text')
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema.createIndex('tokens_user').on('tokens').column('user_id').execute();
    },
  },
  '0002_phone_path': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('tenants').addColumn('prov_prev_password', 'text').execute();
      await db.schema.alterTable('tenants').addColumn('prov_prev_valid_until', 'text').execute();
      await db.schema.alterTable('devices').addColumn('prov_username', 'text').execute();
      await db.schema.alterTable('devices').addColumn('prov_password', 'text').execute();
      await db.schema.alterTable('devices').addColumn('render_error', 'text').execute();
      await db.schema
        .createTable('rendered_files')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('etag', 'text', (c) => c.notNull())
        .addColumn('rendered_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('rendered_files_pk', ['device_id', 'name'])
        .execute();
    },
  },
  '0003_audit': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('audit_events')
        .addColumn('seq', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('tenant_id', 'text')
        .addColumn('actor_id', 'text')
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('ip', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('before', 'text')
        .addColumn('after', 'text')
        .execute();
      await db.schema.createIndex('audit_tenant').on('audit_events').columns(['tenant_id', 'seq']).execute();
      // Append-only in the database itself, whatever code runs against it.
      await sql`CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_events BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END`.execute(db);
      await sql`CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_events BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END`.execute(db);
    },
  },
  '0004_dhcp': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('sites').addColumn('dhcp', 'text', (c) => c.notNull().defaultTo('{}')).execute();
      await db.schema
        .createTable('dhcp_leases')
        .addColumn('site_id', 'text', (c) => c.notNull().references('sites.id').onDelete('cascade'))
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('ip', 'text', (c) => c.notNull())
        .addColumn('mac', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('hostname', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('dhcp_leases_pk', ['site_id', 'ip'])
        .execute();
      await db.schema.createIndex('dhcp_leases_tenant').on('dhcp_leases').columns(['tenant_id', 'site_id']).execute();
    },
  },
  '0005_account_links': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('account_links')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('used_at', 'text')
        .execute();
    },
  },
  '0006_retention': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('tenants').addColumn('deletion_requested_at', 'text').execute();
      await db.schema.alterTable('tenants').addColumn('purge_after', 'text').execute();
      await db.schema.alterTable('tenants').addColumn('subscription_ends_at', 'text').execute();
      // The audit trail stays append-only, except while a purge or an anonymization holds a row
      // here (inside its own transaction): the only code that may rewrite or drop audit events.
      await db.schema.createTable('audit_redactions').addColumn('reason', 'text', (c) => c.notNull()).execute();
      await sql`DROP TRIGGER audit_no_update`.execute(db);
      await sql`DROP TRIGGER audit_no_delete`.execute(db);
      await sql`CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_events WHEN NOT EXISTS (SELECT 1 FROM audit_redactions) BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END`.execute(db);
      await sql`CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_events WHEN NOT EXISTS (SELECT 1 FROM audit_redactions) BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END`.execute(db);
    },
  },
  '0007_firmware': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('firmware_images')
        .addColumn('version', 'text', (c) => c.notNull())
        // '' for a combined image (sip.ld) serving every model.
        .addColumn('part_number', 'text', (c) => c.notNull())
        .addColumn('models', 'text', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('file_name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('firmware_images_pk', ['version', 'part_number'])
        .execute();
      await db.schema
        .createTable('firmware_assignments')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('target_kind', 'text', (c) => c.notNull())
        .addColumn('target_id', 'text', (c) => c.notNull())
        // '' for every model.
        .addColumn('model', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('firmware_assignments_pk', ['tenant_id', 'target_kind', 'target_id', 'model'])
        .execute();
      await db.schema
        .createTable('firmware_rollouts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
};

class StaticProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

/** Brings the schema up to the newest migration; throws when one fails (nothing half-applied). */
export async function migrateToLatest(db: Kysely<unknown>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: new StaticProvider() });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw new Error(`database migration failed: ${(error as Error).message}`, { cause: error });
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

