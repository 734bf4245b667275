import { randomBytes } from 'node:crypto';
import { type Kysely, type Transaction, sql } from 'kysely';
import type { Database } from './schema.ts';

/**
 * The two operations allowed to rewrite or drop what users stored, audit trail included: purging
 * a tenant, and anonymizing a tenant or one device. Each runs in one transaction holding a row in
 * `audit_redactions`, the only state in which the audit triggers let a row change. SQLite runs with
 * `secure_delete`, and `compact()` truncates the WAL, so replaced values do not linger in free pages
 * or old WAL frames of the database file.
 */

type Db = Kysely<Database> | Transaction<Database>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ID_KEY = /(^id|Id|Ids)$/;

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** A random alphanumeric string (uniform: rejection sampling). */
export function randomAlnum(length = 12, alphabet = ALNUM): string {
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < 256 - (256 % alphabet.length) && out.length < length) out += alphabet[b % alphabet.length];
    }
  }
  return out;
}

/** Original value → its random stand-in, one stand-in per distinct original. */
export class Replacements {
  readonly map = new Map<string, string>();

  /** The stand-in for `v` (made on first sight); empty values stay empty. */
  swap(v: string | null | undefined, make: () => string = () => randomAlnum()): string {
    if (!v) return v ?? '';
    let r = this.map.get(v);
    if (r === undefined) this.map.set(v, (r = make()));
    return r;
  }

  email(v: string): string {
    return this.swap(v, () => `${randomAlnum(12).toLowerCase()}@anonymized.invalid`);
  }

  /**
   * Replaces every original inside free text (parameters, audit states, uploaded files), longest
   * first. Originals shorter than 3 characters are replaced only where they are the whole value.
   */
  text(s: string): string {
    const direct = this.map.get(s);
    if (direct !== undefined) return direct;
    if (UUID.test(s)) return s;
    let out = s;
    for (const [from, to] of [...this.map].sort((a, b) => b[0].length - a[0].length)) {
      if (from.length >= 3 && out.includes(from)) out = out.split(from).join(to);
    }
    return out;
  }

  /** Every string inside a JSON value, keys included. */
  json(v: unknown): unknown {
    if (typeof v === 'string') return this.text(v);
    if (Array.isArray(v)) return v.map((x) => this.json(x));
    if (v && typeof v === 'object') {
      // Ids stay as they are (a short original could sit inside one by chance).
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [this.text(k), ID_KEY.test(k) ? this.exact(x) : this.json(x)]));
    }
    return v;
  }

  private exact(v: unknown): unknown {
    if (typeof v === 'string') return this.map.get(v) ?? v;
    if (Array.isArray(v)) return v.map((x) => this.exact(x));
    return v;
  }
}

async function withRedaction<T>(db: Kysely<Database>, reason: string, fn: (tx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (tx) => {
    await tx.insertInto('audit_redactions').values({ reason }).execute();
    const out = await fn(tx);
    await tx.deleteFrom('audit_redactions').execute();
    return out;
  });
}

/** Removes a tenant and everything of it, its audit trail included; returns rows removed per table. */
export async function purgeTenant(db: Kysely<Database>, tenantId: string): Promise<Record<string, number>> {
  return withRedaction(db, `purge ${tenantId}`, async (tx) => {
    const counts: Record<string, number> = {};
    const del = async (table: keyof Database, q: () => Promise<{ numDeletedRows: bigint }>) => {
      counts[table] = Number((await q()).numDeletedRows);
    };
    const users = await tx.selectFrom('users').select(['id', 'email']).where('tenant_id', '=', tenantId).execute();
    const userIds = users.map((u) => u.id);
    await del('audit_events', () => tx.deleteFrom('audit_events').where('tenant_id', '=', tenantId).executeTakeFirst());
    // System events about the tenant keep their fact (who created or deleted it, when), not its data.
    await tx
      .updateTable('audit_events')
      .set({ before: null, after: null })
      .where('tenant_id', 'is', null)
      .where((eb) => eb.or([eb('target', 'like', `/tenants/${tenantId}%`), eb('after', 'like', `%${tenantId}%`), eb('before', 'like', `%${tenantId}%`)]))
      .execute();
    if (users.length) {
      await tx.updateTable('audit_events').set({ actor: 'purged user' }).where('actor', 'in', users.map((u) => u.email)).execute();
    }
    if (userIds.length) {
      await del('account_links', () => tx.deleteFrom('account_links').where('user_id', 'in', userIds).executeTakeFirst());
      await del('tokens', () => tx.deleteFrom('tokens').where('user_id', 'in', userIds).executeTakeFirst());
    }
    for (const table of ['dhcp_leases', 'rendered_files', 'profile_assignments', 'group_members'] as const) {
      await del(table, () => tx.deleteFrom(table).where('tenant_id', '=', tenantId).executeTakeFirst());
    }
    await del('tokens', () => tx.deleteFrom('tokens').where('tenant_id', '=', tenantId).executeTakeFirst());
    for (const table of ['devices', 'users', 'device_groups', 'profiles', 'sites'] as const) {
      await del(table, () => tx.deleteFrom(table).where('tenant_id', '=', tenantId).executeTakeFirst());
    }
    await del('tenants', () => tx.deleteFrom('tenants').where('id', '=', tenantId).executeTakeFirst());
    return counts;
  });
}

export interface AnonymizeScope {
  tenantId: string;
  /** Only this device (its names, lines, addresses, files); else the whole tenant. */
  deviceId?: string;
}

interface Line {
  address?: string;
  displayName?: string;
  label?: string;
  authUserId?: string;
  [k: string]: unknown;
}

/**
 * Replaces the personal data of a tenant (or one device) with random alphanumeric strings, keeping
 * every row, list and field: names, emails, descriptions, site names and locations, IP addresses,
 * SIP addresses, display names and users; then the same values wherever they appear in parameters
 * and in the audit trail. Leases and cached renders of the scope are dropped (they are rebuilt).
 * Returns the replacements so files outside the database (uploads) can get the same treatment.
 */
export async function anonymize(db: Kysely<Database>, scope: AnonymizeScope): Promise<Replacements> {
  const r = new Replacements();
  await withRedaction(db, `anonymize ${scope.tenantId}${scope.deviceId ? `/${scope.deviceId}` : ''}`, async (tx) => {
    const { tenantId, deviceId } = scope;
    const whole = deviceId === undefined;
    let devices = tx.selectFrom('devices').selectAll().where('tenant_id', '=', tenantId);
    if (deviceId) devices = devices.where('id', '=', deviceId);
    const deviceRows = await devices.execute();

    // 1. Structured fields: every original gets its stand-in.
    const tenantRow = whole ? await tx.selectFrom('tenants').selectAll().where('id', '=', tenantId).executeTakeFirst() : undefined;
    const sites = whole ? await tx.selectFrom('sites').selectAll().where('tenant_id', '=', tenantId).execute() : [];
    const groups = whole ? await tx.selectFrom('device_groups').selectAll().where('tenant_id', '=', tenantId).execute() : [];
    const profiles = whole ? await tx.selectFrom('profiles').selectAll().where('tenant_id', '=', tenantId).execute() : [];
    const users = whole ? await tx.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).execute() : [];
    const now = new Date().toISOString();

    if (tenantRow) {
      await tx.updateTable('tenants').set({ name: r.swap(tenantRow.name), slug: r.swap(tenantRow.slug, () => `t-${randomAlnum(12, 'abcdefghijklmnopqrstuvwxyz0123456789')}`), updated_at: now }).where('id', '=', tenantId).execute();
    }
    for (const s of sites) {
      await tx.updateTable('sites').set({ name: r.swap(s.name), description: r.swap(s.description), location: r.swap(s.location), updated_at: now }).where('id', '=', s.id).execute();
    }
    for (const g of groups) {
      await tx.updateTable('device_groups').set({ name: r.swap(g.name), description: r.swap(g.description), updated_at: now }).where('id', '=', g.id).execute();
    }
    for (const u of users) {
      await tx.updateTable('users').set({ name: r.swap(u.name), email: r.email(u.email), updated_at: now }).where('id', '=', u.id).execute();
      // The old address can no longer sign in; nothing issued to it stays valid.
      await tx.updateTable('tokens').set({ revoked_at: now }).where('user_id', '=', u.id).where('revoked_at', 'is', null).execute();
      await tx.deleteFrom('account_links').where('user_id', '=', u.id).execute();
    }
    const newLines = new Map<string, Line[]>();
    for (const d of deviceRows) {
      const lines = (JSON.parse(d.lines) as Line[]).map((l) => ({
        ...l,
        ...(l.address && { address: r.swap(l.address) }),
        ...(l.displayName && { displayName: r.swap(l.displayName) }),
        ...(l.label && { label: r.swap(l.label) }),
        ...(l.authUserId && { authUserId: r.swap(l.authUserId) }),
      }));
      newLines.set(d.id, lines);
      r.swap(d.name);
      for (const label of JSON.parse(d.labels) as string[]) r.swap(label);
      if (d.last_ip) r.swap(d.last_ip);
    }

    // 2. Free text and the rows that carry the stand-ins.
    for (const d of deviceRows) {
      await tx
        .updateTable('devices')
        .set({
          name: r.swap(d.name),
          labels: JSON.stringify((JSON.parse(d.labels) as string[]).map((l) => r.swap(l))),
          lines: JSON.stringify(newLines.get(d.id)),
          params: JSON.stringify(r.json(JSON.parse(d.params))),
          last_ip: d.last_ip ? r.swap(d.last_ip) : null,
          render_error: null,
          updated_at: now,
        })
        .where('id', '=', d.id)
        .execute();
    }
    for (const p of profiles) {
      await tx.updateTable('profiles').set({ name: r.swap(p.name), description: r.swap(p.description), params: JSON.stringify(r.json(JSON.parse(p.params))), updated_at: now }).where('id', '=', p.id).execute();
    }
    const ids = deviceRows.map((d) => d.id);
    const macs = deviceRows.map((d) => d.mac);
    if (whole) {
      await tx.deleteFrom('rendered_files').where('tenant_id', '=', tenantId).execute();
      await tx.deleteFrom('dhcp_leases').where('tenant_id', '=', tenantId).execute();
    } else if (ids.length) {
      await tx.deleteFrom('rendered_files').where('device_id', 'in', ids).execute();
      await tx.deleteFrom('dhcp_leases').where('tenant_id', '=', tenantId).where('mac', 'in', macs).execute();
    }

    // 3. The audit trail: the tenant's events, and system events whose actor was one of its users.
    const emails = users.map((u) => u.email);
    const events = await tx
      .selectFrom('audit_events')
      .selectAll()
      .where((eb) =>
        eb.or([
          eb('tenant_id', '=', tenantId),
          // System events about this tenant (created, deleted, restored) carry its data too.
          eb.and([eb('tenant_id', 'is', null), eb.or([eb('target', 'like', `/tenants/${tenantId}%`), eb('after', 'like', `%${tenantId}%`), eb('before', 'like', `%${tenantId}%`)])]),
          ...(emails.length ? [eb('actor', 'in', emails)] : []),
        ]),
      )
      .execute();
    for (const e of events) {
      const patch = {
        actor: r.map.get(e.actor) ?? e.actor,
        ip: whole && e.ip ? r.swap(e.ip) : e.ip,
        before: e.before === null ? null : JSON.stringify(r.json(JSON.parse(e.before))),
        after: e.after === null ? null : JSON.stringify(r.json(JSON.parse(e.after))),
      };
      await tx.updateTable('audit_events').set(patch).where('seq', '=', e.seq).execute();
    }
  });
  return r;
}

/** Moves everything from the WAL into the database file and truncates the WAL. */
export async function compact(db: Kysely<Database>): Promise<void> {
  await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(db);
}
