import { type Kysely, type SelectQueryBuilder, type Transaction, sql } from 'kysely';
import { AppError } from '../errors.ts';
import type {
  AssignmentTarget,
  AuditEvent,
  Device,
  DeviceState,
  Group,
  LastSeen,
  Page,
  PageRequest,
  Profile,
  Site,
  Tenant,
  Token,
  TokenKind,
  User,
  UserWithSecret,
} from '../domain/types.ts';
import type { Role } from '../domain/roles.ts';
import type { SecretBox } from './secrets.ts';
import { anonymize, compact, purgeTenant } from './redaction.ts';
import { DEFAULT_SITE_DHCP, DEFAULT_TENANT_SETTINGS, type DhcpLease, type FirmwareAssignment, type FirmwareImage, type FirmwareRollout, type SiteDhcp } from '../domain/types.ts';
import type { Database, DevicesTable, DhcpLeasesTable, FirmwareImagesTable, SitesTable, TenantsTable, TokensTable, UsersTable } from './schema.ts';
import type {
  AssignmentRepo,
  DeviceFilter,
  DeviceRepo,
  DhcpLeaseRepo,
  AccountLink,
  AccountLinkRepo,
  RedactionOps,
  FirmwareRepo,
  DeviceRow,
  GroupRepo,
  GroupRow,
  ProfileRepo,
  ProfileRow,
  AuditFilter,
  AuditRepo,
  RenderedFile,
  RenderedRepo,
  SiteRepo,
  SiteRow,
  Store,
  TenantRepo,
  TenantRow,
  TokenRepo,
  TokenRow,
  UserRepo,
} from './store.ts';

type Db = Kysely<Database>;

const json = (v: unknown): string => JSON.stringify(v);
const parse = <T>(s: string): T => JSON.parse(s) as T;

/** Polycom parameters that hold a secret (`device.auth.localAdminPassword`, `reg.1.auth.password` …): sealed at rest. */
export const SECRET_PARAM = /(password|passwd|secret|passphrase)$/i;
const sealParams = (box: SecretBox, p: Record<string, string>): string =>
  json(Object.fromEntries(Object.entries(p).map(([k, v]) => [k, SECRET_PARAM.test(k) ? box.seal(v) : v])));
const openParams = (box: SecretBox, text: string): Record<string, string> =>
  Object.fromEntries(Object.entries(parse<Record<string, string>>(text)).map(([k, v]) => [k, SECRET_PARAM.test(k) ? box.open(v) : v]));

/** Maps driver errors (SQLite and PostgreSQL codes) to the domain's conflict error. */
export function mapDbError(err: unknown): never {
  const code = (err as { code?: unknown }).code;
  const msg = String((err as Error).message ?? '');
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505') {
    throw new AppError('conflict', 'a record with the same unique value already exists', { cause: err });
  }
  if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || code === '23503' || msg.includes('FOREIGN KEY')) {
    throw new AppError('conflict', 'the record is still referenced by others', { cause: err });
  }
  throw err;
}

async function guard<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    return mapDbError(err);
  }
}

async function paged<O, DB, TB extends keyof DB>(
  qb: SelectQueryBuilder<DB, TB, O>,
  page: PageRequest,
  map: (row: O) => Promise<unknown> | unknown,
): Promise<{ items: unknown[]; total: number }> {
  const countRow = (await qb
    .clearSelect()
    .clearOrderBy()
    .select(sql<number>`count(*)`.as('n'))
    .executeTakeFirst()) as { n: number | string } | undefined;
  const rows = await qb.limit(page.limit).offset(page.offset).execute();
  const items = await Promise.all(rows.map(map));
  return { items, total: Number(countRow?.n ?? 0) };
}

class Assignments implements AssignmentRepo {
  constructor(private readonly db: Db) {}

  async get(tenantId: string, kind: AssignmentTarget, targetId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('profile_assignments')
      .select('profile_id')
      .where('tenant_id', '=', tenantId)
      .where('target_kind', '=', kind)
      .where('target_id', '=', targetId)
      .orderBy('position')
      .execute();
    return rows.map((r) => r.profile_id);
  }

  async many(tenantId: string, kind: AssignmentTarget, targetIds: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>(targetIds.map((id) => [id, []]));
    if (targetIds.length === 0) return out;
    const rows = await this.db
      .selectFrom('profile_assignments')
      .select(['target_id', 'profile_id'])
      .where('tenant_id', '=', tenantId)
      .where('target_kind', '=', kind)
      .where('target_id', 'in', targetIds)
      .orderBy('target_id')
      .orderBy('position')
      .execute();
    for (const r of rows) out.get(r.target_id)?.push(r.profile_id);
    return out;
  }

  async set(tenantId: string, kind: AssignmentTarget, targetId: string, profileIds: string[]): Promise<void> {
    await this.db
      .deleteFrom('profile_assignments')
      .where('tenant_id', '=', tenantId)
      .where('target_kind', '=', kind)
      .where('target_id', '=', targetId)
      .execute();
    if (profileIds.length === 0) return;
    await guard(
      this.db
        .insertInto('profile_assignments')
        .values(profileIds.map((profile_id, position) => ({ tenant_id: tenantId, target_kind: kind, target_id: targetId, profile_id, position })))
        .execute(),
    );
  }

  async usages(tenantId: string, profileId: string): Promise<Array<{ kind: AssignmentTarget; targetId: string }>> {
    const rows = await this.db
      .selectFrom('profile_assignments')
      .select(['target_kind', 'target_id'])
      .where('tenant_id', '=', tenantId)
      .where('profile_id', '=', profileId)
      .execute();
    return rows.map((r) => ({ kind: r.target_kind as AssignmentTarget, targetId: r.target_id }));
  }

  async clear(tenantId: string, kind: AssignmentTarget, targetId: string): Promise<void> {
    await this.set(tenantId, kind, targetId, []);
  }
}

function tenantFromRow(r: TenantsTable, profileIds: string[]): Tenant {
  return {
    id: r.id,
    name: r.name,
    slug: r.slug,
    provisioning: { key: r.prov_key, username: r.prov_username },
    settings: { ...DEFAULT_TENANT_SETTINGS, ...parse<object>(r.settings) },
    profileIds,
    deletion: r.deletion_requested_at && r.purge_after ? { requestedAt: r.deletion_requested_at, purgeAfter: r.purge_after } : null,
    subscriptionEndsAt: r.subscription_ends_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

class Tenants implements TenantRepo {
  constructor(
    private readonly db: Db,
    private readonly asg: Assignments,
    private readonly box: SecretBox,
  ) {}

  async insert(row: TenantRow): Promise<void> {
    await guard(
      this.db
        .insertInto('tenants')
        .values({
          id: row.id,
          name: row.name,
          slug: row.slug,
          prov_key: row.provisioning.key,
          prov_username: row.provisioning.username,
          prov_password: this.box.seal(row.provisioningPassword),
          prov_prev_password: row.previousPassword ? this.box.seal(row.previousPassword) : null,
          prov_prev_valid_until: row.previousValidUntil ?? null,
          settings: json(row.settings),
          created_at: row.createdAt,
          updated_at: row.updatedAt,
        })
        .execute(),
    );
  }

  private async view(r: TenantsTable | undefined): Promise<Tenant | undefined> {
    return r ? tenantFromRow(r, await this.asg.get(r.id, 'tenant', r.id)) : undefined;
  }

  /** Tenants marked for deletion are gone for every ordinary lookup. */
  private live() {
    return this.db.selectFrom('tenants').selectAll().where('deletion_requested_at', 'is', null);
  }

  async get(id: string): Promise<Tenant | undefined> {
    return this.view(await this.live().where('id', '=', id).executeTakeFirst());
  }

  async getIncludingDeleted(id: string): Promise<Tenant | undefined> {
    return this.view(await this.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst());
  }

  async listDeleted(): Promise<Tenant[]> {
    const rows = await this.db.selectFrom('tenants').selectAll().where('deletion_requested_at', 'is not', null).orderBy('purge_after').execute();
    return (await Promise.all(rows.map((r) => this.view(r)))) as Tenant[];
  }

  async setDeletion(id: string, deletion: Tenant['deletion'], now: string): Promise<boolean> {
    const res = await this.db
      .updateTable('tenants')
      .set({ deletion_requested_at: deletion?.requestedAt ?? null, purge_after: deletion?.purgeAfter ?? null, updated_at: now })
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async setSubscriptionEnd(id: string, endsAt: string | null, now: string): Promise<boolean> {
    const res = await this.db.updateTable('tenants').set({ subscription_ends_at: endsAt, updated_at: now }).where('id', '=', id).executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async dueForPurge(now: string, subscriptionCutoff: string): Promise<Array<{ id: string; reason: 'deletion' | 'subscription' }>> {
    const rows = await this.db
      .selectFrom('tenants')
      .select(['id', 'purge_after', 'subscription_ends_at'])
      .where((eb) => eb.or([eb('purge_after', '<=', now), eb('subscription_ends_at', '<=', subscriptionCutoff)]))
      .execute();
    return rows.map((r) => ({ id: r.id, reason: r.purge_after && r.purge_after <= now ? ('deletion' as const) : ('subscription' as const) }));
  }

  async getWithSecrets(id: string): Promise<TenantRow | undefined> {
    const r = await this.live().where('id', '=', id).executeTakeFirst();
    if (!r) return undefined;
    const { profileIds: _ignored, ...t } = tenantFromRow(r, []);
    return {
      ...t,
      provisioningPassword: this.box.open(r.prov_password),
      previousPassword: r.prov_prev_password ? this.box.open(r.prov_prev_password) : null,
      previousValidUntil: r.prov_prev_valid_until,
    };
  }

  async getByProvisioningKey(key: string): Promise<Tenant | undefined> {
    return this.view(await this.live().where('prov_key', '=', key).executeTakeFirst());
  }

  async getBySlug(slug: string): Promise<Tenant | undefined> {
    return this.view(await this.live().where('slug', '=', slug).executeTakeFirst());
  }

  async list(page: PageRequest, ids?: string[]): Promise<Page<Tenant>> {
    let qb = this.live().orderBy('created_at').orderBy('id');
    if (ids) qb = ids.length ? qb.where('id', 'in', ids) : qb.where(sql<boolean>`1 = 0`);
    const { items, total } = await paged(qb, page, (r) => this.view(r as TenantsTable));
    return { items: items as Tenant[], total, ...page };
  }

  async update(
    id: string,
    patch: Partial<Pick<TenantRow, 'name' | 'slug' | 'settings' | 'provisioningPassword' | 'previousPassword' | 'previousValidUntil'>>,
    now: string,
  ): Promise<boolean> {
    const res = await guard(
      this.db
        .updateTable('tenants')
        .set({
          ...(patch.name !== undefined && { name: patch.name }),
          ...(patch.slug !== undefined && { slug: patch.slug }),
          ...(patch.settings !== undefined && { settings: json(patch.settings) }),
          ...(patch.provisioningPassword !== undefined && { prov_password: this.box.seal(patch.provisioningPassword) }),
          ...(patch.previousPassword !== undefined && { prov_prev_password: patch.previousPassword ? this.box.seal(patch.previousPassword) : null }),
          ...(patch.previousValidUntil !== undefined && { prov_prev_valid_until: patch.previousValidUntil }),
          updated_at: now,
        })
        .where('id', '=', id)
        .executeTakeFirst(),
    );
    return Number(res.numUpdatedRows) > 0;
  }

  async delete(id: string): Promise<boolean> {
    // Assignments reference profiles with RESTRICT, so they go first.
    await this.db.deleteFrom('profile_assignments').where('tenant_id', '=', id).execute();
    await this.db.deleteFrom('devices').where('tenant_id', '=', id).execute();
    const res = await this.db.deleteFrom('tenants').where('id', '=', id).executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }
}

function siteFromRow(r: SitesTable & { device_count: number | string | null }, profileIds: string[]): Site {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    description: r.description,
    location: r.location,
    subnets: parse(r.subnets),
    timeZone: r.time_zone,
    sip: parse(r.sip),
    ntp: parse(r.ntp),
    dhcp: { ...DEFAULT_SITE_DHCP, ...parse<Partial<SiteDhcp>>(r.dhcp) },
    profileIds,
    deviceCount: Number(r.device_count ?? 0),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

class Sites implements SiteRepo {
  constructor(
    private readonly db: Db,
    private readonly asg: Assignments,
  ) {}

  private base(tenantId: string) {
    return this.db
      .selectFrom('sites')
      .selectAll('sites')
      .select((eb) =>
        eb
          .selectFrom('devices')
          .select(sql<number>`count(*)`.as('n'))
          .whereRef('devices.site_id', '=', 'sites.id')
          .as('device_count'),
      )
      .where('sites.tenant_id', '=', tenantId);
  }

  async insert(row: SiteRow): Promise<void> {
    await guard(
      this.db
        .insertInto('sites')
        .values({
          id: row.id,
          tenant_id: row.tenantId,
          name: row.name,
          description: row.description,
          location: row.location,
          subnets: json(row.subnets),
          time_zone: row.timeZone,
          sip: json(row.sip),
          ntp: json(row.ntp),
          dhcp: json(row.dhcp),
          created_at: row.createdAt,
          updated_at: row.updatedAt,
        })
        .execute(),
    );
  }

  async get(tenantId: string, id: string): Promise<Site | undefined> {
    const r = await this.base(tenantId).where('sites.id', '=', id).executeTakeFirst();
    return r ? siteFromRow(r, await this.asg.get(tenantId, 'site', r.id)) : undefined;
  }

  async list(tenantId: string, page: PageRequest): Promise<Page<Site>> {
    const qb = this.base(tenantId).orderBy('sites.name').orderBy('sites.id');
    const countRow = await this.db
      .selectFrom('sites')
      .select(sql<number>`count(*)`.as('n'))
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    const rows = await qb.limit(page.limit).offset(page.offset).execute();
    const asg = await this.asg.many(tenantId, 'site', rows.map((r) => r.id));
    return { items: rows.map((r) => siteFromRow(r, asg.get(r.id) ?? [])), total: Number(countRow?.n ?? 0), ...page };
  }

  async all(tenantId: string): Promise<Site[]> {
    return (await this.list(tenantId, { limit: 1_000_000, offset: 0 })).items;
  }

  async update(tenantId: string, id: string, patch: Partial<Omit<SiteRow, 'id' | 'tenantId' | 'createdAt'>>): Promise<boolean> {
    const res = await guard(
      this.db
        .updateTable('sites')
        .set({
          ...(patch.name !== undefined && { name: patch.name }),
          ...(patch.description !== undefined && { description: patch.description }),
          ...(patch.location !== undefined && { location: patch.location }),
          ...(patch.subnets !== undefined && { subnets: json(patch.subnets) }),
          ...(patch.timeZone !== undefined && { time_zone: patch.timeZone }),
          ...(patch.sip !== undefined && { sip: json(patch.sip) }),
          ...(patch.ntp !== undefined && { ntp: json(patch.ntp) }),
          ...(patch.dhcp !== undefined && { dhcp: json(patch.dhcp) }),
          ...(patch.updatedAt !== undefined && { updated_at: patch.updatedAt }),
        })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .executeTakeFirst(),
    );
    return Number(res.numUpdatedRows) > 0;
  }

  async delete(tenantId: string, id: string): Promise<boolean> {
    const res = await guard(this.db.deleteFrom('sites').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst());
    if (Number(res.numDeletedRows) > 0) await this.asg.clear(tenantId, 'site', id);
    return Number(res.numDeletedRows) > 0;
  }
}

class Groups implements GroupRepo {
  constructor(
    private readonly db: Db,
    private readonly asg: Assignments,
  ) {}

  private base(tenantId: string) {
    return this.db
      .selectFrom('device_groups')
      .selectAll('device_groups')
      .select((eb) =>
        eb
          .selectFrom('group_members')
          .select(sql<number>`count(*)`.as('n'))
          .whereRef('group_members.group_id', '=', 'device_groups.id')
          .as('device_count'),
      )
      .where('device_groups.tenant_id', '=', tenantId);
  }

  private view(r: Record<string, unknown>, profileIds: string[]): Group {
    return {
      id: r.id as string,
      tenantId: r.tenant_id as string,
      name: r.name as string,
      description: r.description as string,
      profileIds,
      deviceCount: Number(r.device_count ?? 0),
      createdAt: r.created_at as string,
      updatedAt: r.updated_at as string,
    };
  }

  async insert(row: GroupRow): Promise<void> {
    await guard(
      this.db
        .insertInto('device_groups')
        .values({
          id: row.id,
          tenant_id: row.tenantId,
          name: row.name,
          description: row.description,
          created_at: row.createdAt,
          updated_at: row.updatedAt,
        })
        .execute(),
    );
  }

  async get(tenantId: string, id: string): Promise<Group | undefined> {
    const r = await this.base(tenantId).where('device_groups.id', '=', id).executeTakeFirst();
    return r ? this.view(r, await this.asg.get(tenantId, 'group', r.id)) : undefined;
  }

  async list(tenantId: string, page: PageRequest): Promise<Page<Group>> {
    const countRow = await this.db
      .selectFrom('device_groups')
      .select(sql<number>`count(*)`.as('n'))
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    const rows = await this.base(tenantId).orderBy('device_groups.name').limit(page.limit).offset(page.offset).execute();
    const asg = await this.asg.many(tenantId, 'group', rows.map((r) => r.id));
    return { items: rows.map((r) => this.view(r, asg.get(r.id) ?? [])), total: Number(countRow?.n ?? 0), ...page };
  }

  async existing(tenantId: string, ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db
      .selectFrom('device_groups')
      .select('id')
      .where('tenant_id', '=', tenantId)
      .where('id', 'in', ids)
      .execute();
    return new Set(rows.map((r) => r.id));
  }

  async update(tenantId: string, id: string, patch: Partial<Pick<GroupRow, 'name' | 'description' | 'updatedAt'>>): Promise<boolean> {
    const res = await guard(
      this.db
        .updateTable('device_groups')
        .set({
          ...(patch.name !== undefined && { name: patch.name }),
          ...(patch.description !== undefined && { description: patch.description }),
          ...(patch.updatedAt !== undefined && { updated_at: patch.updatedAt }),
        })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .executeTakeFirst(),
    );
    return Number(res.numUpdatedRows) > 0;
  }

  async delete(tenantId: string, id: string): Promise<boolean> {
    const res = await this.db.deleteFrom('device_groups').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    if (Number(res.numDeletedRows) > 0) await this.asg.clear(tenantId, 'group', id);
    return Number(res.numDeletedRows) > 0;
  }
}

/** SIP line passwords are sealed one by one; the rest of a line (user, server) stays readable. */
function sealLines(box: SecretBox, lines: Device['lines']): string {
  return json(lines.map((l) => (l.authPassword !== undefined ? { ...l, authPassword: box.seal(l.authPassword) } : l)));
}

function openLines(box: SecretBox, text: string): Device['lines'] {
  return parse<Device['lines']>(text).map((l) => (l.authPassword !== undefined ? { ...l, authPassword: box.open(l.authPassword) } : l));
}

function deviceFromRow(box: SecretBox, r: DevicesTable, groupIds: string[], profileIds: string[]): Device {
  const lastSeen: LastSeen | null = r.last_seen_at
    ? { at: r.last_seen_at, ip: r.last_ip, userAgent: r.last_user_agent, firmware: r.last_firmware }
    : null;
  return {
    id: r.id,
    tenantId: r.tenant_id,
    mac: r.mac,
    model: r.model,
    name: r.name,
    siteId: r.site_id,
    groupIds,
    labels: parse(r.labels),
    lines: openLines(box, r.lines),
    params: openParams(box, r.params),
    profileIds,
    state: r.state as DeviceState,
    lastSeen,
    credentials: r.prov_username && r.prov_password ? { username: r.prov_username, password: box.open(r.prov_password) } : null,
    renderError: r.render_error ? parse(r.render_error) : null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

class Devices implements DeviceRepo {
  constructor(
    private readonly db: Db,
    private readonly asg: Assignments,
    private readonly box: SecretBox,
  ) {}

  private async groupsOf(tenantId: string, ids: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>(ids.map((id) => [id, []]));
    if (ids.length === 0) return out;
    const rows = await this.db
      .selectFrom('group_members')
      .select(['device_id', 'group_id'])
      .where('tenant_id', '=', tenantId)
      .where('device_id', 'in', ids)
      .orderBy('group_id')
      .execute();
    for (const r of rows) out.get(r.device_id)?.push(r.group_id);
    return out;
  }

  private async views(tenantId: string, rows: DevicesTable[]): Promise<Device[]> {
    const ids = rows.map((r) => r.id);
    const [groups, profiles] = await Promise.all([this.groupsOf(tenantId, ids), this.asg.many(tenantId, 'device', ids)]);
    return rows.map((r) => deviceFromRow(this.box, r, groups.get(r.id) ?? [], profiles.get(r.id) ?? []));
  }

  private async setGroups(tenantId: string, deviceId: string, groupIds: string[]): Promise<void> {
    await this.db.deleteFrom('group_members').where('tenant_id', '=', tenantId).where('device_id', '=', deviceId).execute();
    if (groupIds.length === 0) return;
    await guard(
      this.db
        .insertInto('group_members')
        .values([...new Set(groupIds)].map((group_id) => ({ tenant_id: tenantId, device_id: deviceId, group_id })))
        .execute(),
    );
  }

  async insert(row: DeviceRow, groupIds: string[]): Promise<void> {
    await guard(
      this.db
        .insertInto('devices')
        .values({
          id: row.id,
          tenant_id: row.tenantId,
          mac: row.mac,
          model: row.model,
          name: row.name,
          site_id: row.siteId,
          labels: json(row.labels),
          lines: sealLines(this.box, row.lines),
          params: sealParams(this.box, row.params),
          state: row.state,
          last_seen_at: row.lastSeen?.at ?? null,
          last_ip: row.lastSeen?.ip ?? null,
          last_user_agent: row.lastSeen?.userAgent ?? null,
          last_firmware: row.lastSeen?.firmware ?? null,
          prov_username: row.credentials?.username ?? null,
          prov_password: row.credentials ? this.box.seal(row.credentials.password) : null,
          render_error: row.renderError ? json(row.renderError) : null,
          created_at: row.createdAt,
          updated_at: row.updatedAt,
        })
        .execute(),
    );
    await this.setGroups(row.tenantId, row.id, groupIds);
  }

  async get(tenantId: string, id: string): Promise<Device | undefined> {
    const r = await this.db.selectFrom('devices').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return r ? (await this.views(tenantId, [r]))[0] : undefined;
  }

  async getByMac(tenantId: string, mac: string): Promise<Device | undefined> {
    const r = await this.db.selectFrom('devices').selectAll().where('tenant_id', '=', tenantId).where('mac', '=', mac).executeTakeFirst();
    return r ? (await this.views(tenantId, [r]))[0] : undefined;
  }

  async macTaken(mac: string): Promise<boolean> {
    return !!(await this.db.selectFrom('devices').select('id').where('mac', '=', mac).executeTakeFirst());
  }

  async list(tenantId: string, f: DeviceFilter, page: PageRequest): Promise<Page<Device>> {
    let qb = this.db.selectFrom('devices').selectAll().where('tenant_id', '=', tenantId);
    if (f.siteId !== undefined) qb = qb.where('site_id', '=', f.siteId);
    if (f.model !== undefined) qb = qb.where(sql<string>`lower(model)`, '=', f.model.toLowerCase());
    if (f.state !== undefined) qb = qb.where('state', '=', f.state);
    if (f.macPrefix !== undefined) qb = qb.where('mac', '>=', f.macPrefix).where('mac', '<', `${f.macPrefix}\u{10ffff}`);
    if (f.seenSince !== undefined) qb = qb.where('last_seen_at', '>=', f.seenSince);
    if (f.seenBefore !== undefined) qb = qb.where('last_seen_at', '<', f.seenBefore);
    if (f.neverSeen) qb = qb.where('last_seen_at', 'is', null);
    if (f.groupId !== undefined) {
      const groupId = f.groupId;
      qb = qb.where('id', 'in', (eb) =>
        eb.selectFrom('group_members').select('device_id').where('tenant_id', '=', tenantId).where('group_id', '=', groupId),
      );
    }
    if (f.label !== undefined) {
      // Labels are a JSON array of strings; match the quoted element exactly.
      qb = qb.where('labels', 'like', `%${JSON.stringify(f.label).replace(/[%_\\]/g, '\\$&')}%`);
    }
    const countRow = await qb.clearSelect().select(sql<number>`count(*)`.as('n')).executeTakeFirst();
    const rows = await qb.orderBy('created_at').orderBy('id').limit(page.limit).offset(page.offset).execute();
    return { items: await this.views(tenantId, rows), total: Number(countRow?.n ?? 0), ...page };
  }

  async update(
    tenantId: string,
    id: string,
    patch: Partial<Omit<DeviceRow, 'id' | 'tenantId' | 'createdAt' | 'lastSeen' | 'renderError'>>,
    groupIds?: string[],
  ): Promise<boolean> {
    const res = await guard(
      this.db
        .updateTable('devices')
        .set({
          ...(patch.mac !== undefined && { mac: patch.mac }),
          ...(patch.model !== undefined && { model: patch.model }),
          ...(patch.name !== undefined && { name: patch.name }),
          ...(patch.siteId !== undefined && { site_id: patch.siteId }),
          ...(patch.labels !== undefined && { labels: json(patch.labels) }),
          ...(patch.lines !== undefined && { lines: sealLines(this.box, patch.lines) }),
          ...(patch.params !== undefined && { params: sealParams(this.box, patch.params) }),
          ...(patch.state !== undefined && { state: patch.state }),
          ...(patch.credentials !== undefined && {
            prov_username: patch.credentials?.username ?? null,
            prov_password: patch.credentials ? this.box.seal(patch.credentials.password) : null,
          }),
          ...(patch.updatedAt !== undefined && { updated_at: patch.updatedAt }),
        })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .executeTakeFirst(),
    );
    if (Number(res.numUpdatedRows) === 0) return false;
    if (groupIds) await this.setGroups(tenantId, id, groupIds);
    return true;
  }

  async setRenderError(tenantId: string, id: string, error: DeviceRow['renderError']): Promise<void> {
    await this.db
      .updateTable('devices')
      .set({ render_error: error ? json(error) : null })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .execute();
  }

  async idsUsing(tenantId: string, ref: { siteId?: string; groupId?: string }): Promise<string[]> {
    if (ref.siteId !== undefined) {
      const rows = await this.db.selectFrom('devices').select('id').where('tenant_id', '=', tenantId).where('site_id', '=', ref.siteId).execute();
      return rows.map((r) => r.id);
    }
    if (ref.groupId !== undefined) {
      const rows = await this.db.selectFrom('group_members').select('device_id').where('tenant_id', '=', tenantId).where('group_id', '=', ref.groupId).execute();
      return rows.map((r) => r.device_id);
    }
    return [];
  }

  async recordSeen(entries: Array<{ tenantId: string; id: string; lastSeen: LastSeen }>): Promise<void> {
    for (const e of entries) {
      await this.db
        .updateTable('devices')
        .set({
          last_seen_at: e.lastSeen.at,
          last_ip: e.lastSeen.ip,
          last_user_agent: e.lastSeen.userAgent,
          last_firmware: e.lastSeen.firmware,
        })
        .where('tenant_id', '=', e.tenantId)
        .where('id', '=', e.id)
        .execute();
    }
  }

  async delete(tenantId: string, id: string): Promise<boolean> {
    const res = await this.db.deleteFrom('devices').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    if (Number(res.numDeletedRows) > 0) await this.asg.clear(tenantId, 'device', id);
    return Number(res.numDeletedRows) > 0;
  }
}

class Audit implements AuditRepo {
  constructor(private readonly db: Db) {}

  async append(e: Omit<AuditEvent, 'seq'>): Promise<void> {
    await this.db
      .insertInto('audit_events')
      .values({
        at: e.at,
        tenant_id: e.tenantId,
        actor_id: e.actorId,
        actor: e.actor,
        ip: e.ip,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        before: e.before === undefined || e.before === null ? null : json(e.before),
        after: e.after === undefined || e.after === null ? null : json(e.after),
      })
      .execute();
  }

  async list(tenantId: string | null, f: AuditFilter, page: PageRequest): Promise<Page<AuditEvent>> {
    let qb = this.db.selectFrom('audit_events').selectAll();
    qb = tenantId === null ? qb.where('tenant_id', 'is', null) : qb.where('tenant_id', '=', tenantId);
    if (f.action !== undefined) qb = qb.where('action', '=', f.action);
    if (f.actor !== undefined) qb = qb.where('actor', '=', f.actor.toLowerCase());
    if (f.since !== undefined) qb = qb.where('at', '>=', f.since);
    if (f.until !== undefined) qb = qb.where('at', '<', f.until);
    const countRow = await qb.clearSelect().select(sql<number>`count(*)`.as('n')).executeTakeFirst();
    const rows = await qb.orderBy('seq', 'desc').limit(page.limit).offset(page.offset).execute();
    return {
      items: rows.map((r) => ({
        seq: Number(r.seq),
        at: r.at,
        tenantId: r.tenant_id,
        actorId: r.actor_id,
        actor: r.actor,
        ip: r.ip,
        action: r.action,
        target: r.target,
        outcome: r.outcome as AuditEvent['outcome'],
        before: r.before ? parse(r.before) : null,
        after: r.after ? parse(r.after) : null,
      })),
      total: Number(countRow?.n ?? 0),
      ...page,
    };
  }
}

class Rendered implements RenderedRepo {
  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
  ) {}

  async get(tenantId: string, deviceId: string, name: string): Promise<RenderedFile | undefined> {
    const r = await this.db
      .selectFrom('rendered_files')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('device_id', '=', deviceId)
      .where('name', '=', name)
      .executeTakeFirst();
    return r ? { name: r.name, body: this.box.open(r.body), etag: r.etag, renderedAt: r.rendered_at } : undefined;
  }

  async put(tenantId: string, deviceId: string, file: RenderedFile): Promise<void> {
    // A rendered config carries SIP passwords: sealed whole.
    const body = this.box.seal(file.body);
    await this.db
      .insertInto('rendered_files')
      .values({ tenant_id: tenantId, device_id: deviceId, name: file.name, body, etag: file.etag, rendered_at: file.renderedAt })
      .onConflict((oc) => oc.columns(['device_id', 'name']).doUpdateSet({ body, etag: file.etag, rendered_at: file.renderedAt }))
      .execute();
  }
}

class Profiles implements ProfileRepo {
  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
  ) {}

  private view(r: Database['profiles']): Profile {
    return {
      id: r.id,
      tenantId: r.tenant_id,
      name: r.name,
      description: r.description,
      params: openParams(this.box, r.params),
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    };
  }

  async insert(row: ProfileRow): Promise<void> {
    await guard(
      this.db
        .insertInto('profiles')
        .values({
          id: row.id,
          tenant_id: row.tenantId,
          name: row.name,
          description: row.description,
          params: sealParams(this.box, row.params),
          created_at: row.createdAt,
          updated_at: row.updatedAt,
        })
        .execute(),
    );
  }

  async get(tenantId: string, id: string): Promise<Profile | undefined> {
    const r = await this.db.selectFrom('profiles').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return r ? this.view(r) : undefined;
  }

  async list(tenantId: string, page: PageRequest): Promise<Page<Profile>> {
    const qb = this.db.selectFrom('profiles').selectAll().where('tenant_id', '=', tenantId).orderBy('name').orderBy('id');
    const { items, total } = await paged(qb, page, (r) => this.view(r as Database['profiles']));
    return { items: items as Profile[], total, ...page };
  }

  async existing(tenantId: string, ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db.selectFrom('profiles').select('id').where('tenant_id', '=', tenantId).where('id', 'in', ids).execute();
    return new Set(rows.map((r) => r.id));
  }

  async update(tenantId: string, id: string, patch: Partial<Pick<ProfileRow, 'name' | 'description' | 'params' | 'updatedAt'>>): Promise<boolean> {
    const res = await guard(
      this.db
        .updateTable('profiles')
        .set({
          ...(patch.name !== undefined && { name: patch.name }),
          ...(patch.description !== undefined && { description: patch.description }),
          ...(patch.params !== undefined && { params: sealParams(this.box, patch.params) }),
          ...(patch.updatedAt !== undefined && { updated_at: patch.updatedAt }),
        })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .executeTakeFirst(),
    );
    return Number(res.numUpdatedRows) > 0;
  }

  async delete(tenantId: string, id: string): Promise<boolean> {
    const res = await guard(this.db.deleteFrom('profiles').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst());
    return Number(res.numDeletedRows) > 0;
  }
}

function userFromRow(r: UsersTable): UserWithSecret {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    email: r.email,
    name: r.name,
    role: r.role as Role,
    disabled: r.disabled === 1,
    activated: r.password_hash !== null,
    passwordHash: r.password_hash,
    passwordChangedAt: r.password_changed_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const publicUser = ({ passwordHash: _h, passwordChangedAt: _c, ...u }: UserWithSecret): User => u;

class Users implements UserRepo {
  constructor(private readonly db: Db) {}

  async insert(row: UserWithSecret): Promise<void> {
    await guard(
      this.db
        .insertInto('users')
        .values({
          id: row.id,
          tenant_id: row.tenantId,
          email: row.email,
          name: row.name,
          role: row.role,
          password_hash: row.passwordHash,
          password_changed_at: row.passwordChangedAt,
          disabled: row.disabled ? 1 : 0,
          created_at: row.createdAt,
          updated_at: row.updatedAt,
        })
        .execute(),
    );
  }

  async get(tenantId: string | null, id: string): Promise<User | undefined> {
    let qb = this.db.selectFrom('users').selectAll().where('id', '=', id);
    qb = tenantId === null ? qb.where('tenant_id', 'is', null) : qb.where('tenant_id', '=', tenantId);
    const r = await qb.executeTakeFirst();
    return r ? publicUser(userFromRow(r)) : undefined;
  }

  async getWithSecretById(id: string): Promise<UserWithSecret | undefined> {
    const r = await this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? userFromRow(r) : undefined;
  }

  async getWithSecretByEmail(email: string): Promise<UserWithSecret | undefined> {
    const r = await this.db.selectFrom('users').selectAll().where('email', '=', email.toLowerCase()).executeTakeFirst();
    return r ? userFromRow(r) : undefined;
  }

  async list(tenantId: string, page: PageRequest): Promise<Page<User>> {
    const qb = this.db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).orderBy('email');
    const { items, total } = await paged(qb, page, (r) => publicUser(userFromRow(r as UsersTable)));
    return { items: items as User[], total, ...page };
  }

  async countByRole(role: string): Promise<number> {
    const r = await this.db.selectFrom('users').select(sql<number>`count(*)`.as('n')).where('role', '=', role).executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async update(
    tenantId: string | null,
    id: string,
    patch: Partial<Pick<UserWithSecret, 'name' | 'role' | 'disabled' | 'passwordHash' | 'passwordChangedAt' | 'updatedAt'>>,
  ): Promise<boolean> {
    let qb = this.db
      .updateTable('users')
      .set({
        ...(patch.name !== undefined && { name: patch.name }),
        ...(patch.role !== undefined && { role: patch.role }),
        ...(patch.disabled !== undefined && { disabled: patch.disabled ? 1 : 0 }),
        ...(patch.passwordHash !== undefined && { password_hash: patch.passwordHash }),
        ...(patch.passwordChangedAt !== undefined && { password_changed_at: patch.passwordChangedAt }),
        ...(patch.updatedAt !== undefined && { updated_at: patch.updatedAt }),
      })
      .where('id', '=', id);
    qb = tenantId === null ? qb.where('tenant_id', 'is', null) : qb.where('tenant_id', '=', tenantId);
    const res = await qb.executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async delete(tenantId: string, id: string): Promise<boolean> {
    const res = await this.db.deleteFrom('users').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }
}

function tokenFromRow(r: TokensTable): TokenRow {
  return {
    id: r.id,
    userId: r.user_id,
    tenantId: r.tenant_id,
    kind: r.kind as TokenKind,
    name: r.name,
    tokenHash: r.token_hash,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
  };
}

const publicToken = ({ tokenHash: _h, ...t }: TokenRow): Token => t;

class Tokens implements TokenRepo {
  constructor(private readonly db: Db) {}

  async insert(row: TokenRow): Promise<void> {
    await guard(
      this.db
        .insertInto('tokens')
        .values({
          id: row.id,
          user_id: row.userId,
          tenant_id: row.tenantId,
          kind: row.kind,
          name: row.name,
          token_hash: row.tokenHash,
          created_at: row.createdAt,
          expires_at: row.expiresAt,
          last_used_at: row.lastUsedAt,
          revoked_at: row.revokedAt,
        })
        .execute(),
    );
  }

  async findByHash(hash: string): Promise<TokenRow | undefined> {
    const r = await this.db.selectFrom('tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst();
    return r ? tokenFromRow(r) : undefined;
  }

  private scoped(tenantId: string) {
    return this.db
      .selectFrom('tokens')
      .selectAll('tokens')
      .where('tokens.kind', '=', 'api')
      .where((eb) =>
        eb.or([
          eb('tokens.tenant_id', '=', tenantId),
          eb('tokens.user_id', 'in', eb.selectFrom('users').select('users.id').where('users.tenant_id', '=', tenantId)),
        ]),
      );
  }

  async list(tenantId: string, userId?: string): Promise<Token[]> {
    let qb = this.scoped(tenantId).orderBy('tokens.created_at');
    if (userId !== undefined) qb = qb.where('tokens.user_id', '=', userId);
    return (await qb.execute()).map((r) => publicToken(tokenFromRow(r)));
  }

  async get(tenantId: string, id: string): Promise<Token | undefined> {
    const r = await this.scoped(tenantId).where('tokens.id', '=', id).executeTakeFirst();
    return r ? publicToken(tokenFromRow(r)) : undefined;
  }

  async revoke(id: string, now: string): Promise<boolean> {
    const res = await this.db.updateTable('tokens').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async revokeAllForUser(userId: string, now: string): Promise<number> {
    const res = await this.db.updateTable('tokens').set({ revoked_at: now }).where('user_id', '=', userId).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(res.numUpdatedRows);
  }

  async touch(id: string, now: string): Promise<void> {
    await this.db.updateTable('tokens').set({ last_used_at: now }).where('id', '=', id).execute();
  }

  async prune(before: string): Promise<number> {
    const res = await this.db
      .deleteFrom('tokens')
      .where('kind', '=', 'session')
      .where((eb) => eb.or([eb('expires_at', '<', before), eb('revoked_at', '<', before)]))
      .executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}

class DhcpLeases implements DhcpLeaseRepo {
  constructor(private readonly db: Db) {}

  private static from(r: DhcpLeasesTable): DhcpLease {
    return {
      tenantId: r.tenant_id,
      siteId: r.site_id,
      ip: r.ip,
      mac: r.mac,
      state: r.state as DhcpLease['state'],
      expiresAt: r.expires_at,
      hostname: r.hostname,
      updatedAt: r.updated_at,
    };
  }

  async all(): Promise<DhcpLease[]> {
    return (await this.db.selectFrom('dhcp_leases').selectAll().execute()).map(DhcpLeases.from);
  }

  async list(tenantId: string, siteId: string): Promise<DhcpLease[]> {
    const rows = await this.db.selectFrom('dhcp_leases').selectAll().where('tenant_id', '=', tenantId).where('site_id', '=', siteId).execute();
    return rows.map(DhcpLeases.from).sort((a, b) => ipOrder(a.ip) - ipOrder(b.ip));
  }

  async put(l: DhcpLease): Promise<void> {
    const values = { mac: l.mac, state: l.state, expires_at: l.expiresAt, hostname: l.hostname, updated_at: l.updatedAt };
    await this.db
      .insertInto('dhcp_leases')
      .values({ site_id: l.siteId, tenant_id: l.tenantId, ip: l.ip, ...values })
      .onConflict((oc) => oc.columns(['site_id', 'ip']).doUpdateSet(values))
      .execute();
  }

  async delete(siteId: string, ip: string): Promise<void> {
    await this.db.deleteFrom('dhcp_leases').where('site_id', '=', siteId).where('ip', '=', ip).execute();
  }
}

class AccountLinks implements AccountLinkRepo {
  constructor(private readonly db: Db) {}

  async insert(l: AccountLink): Promise<void> {
    await this.db
      .insertInto('account_links')
      .values({ id: l.id, user_id: l.userId, purpose: l.purpose, token_hash: l.tokenHash, created_at: l.createdAt, expires_at: l.expiresAt, used_at: l.usedAt })
      .execute();
  }

  async findByHash(hash: string): Promise<AccountLink | undefined> {
    const r = await this.db.selectFrom('account_links').selectAll().where('token_hash', '=', hash).executeTakeFirst();
    return r
      ? { id: r.id, userId: r.user_id, purpose: r.purpose as AccountLink['purpose'], tokenHash: r.token_hash, createdAt: r.created_at, expiresAt: r.expires_at, usedAt: r.used_at }
      : undefined;
  }

  async consume(id: string, now: string): Promise<boolean> {
    const res = await this.db.updateTable('account_links').set({ used_at: now }).where('id', '=', id).where('used_at', 'is', null).executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async revokeForUser(userId: string, now: string): Promise<void> {
    await this.db.updateTable('account_links').set({ used_at: now }).where('user_id', '=', userId).where('used_at', 'is', null).execute();
  }
}

class Firmware implements FirmwareRepo {
  constructor(private readonly db: Db) {}

  async putImage(i: FirmwareImage): Promise<void> {
    const values = { models: json(i.models), sha256: i.sha256, size: i.size, file_name: i.fileName, created_at: i.createdAt };
    await this.db
      .insertInto('firmware_images')
      .values({ version: i.version, part_number: i.partNumber ?? '', ...values })
      .onConflict((oc) => oc.columns(['version', 'part_number']).doUpdateSet(values))
      .execute();
  }

  private static image(r: FirmwareImagesTable): FirmwareImage {
    return { version: r.version, partNumber: r.part_number || null, models: parse(r.models), sha256: r.sha256, size: Number(r.size), fileName: r.file_name, createdAt: r.created_at };
  }

  async images(version?: string): Promise<FirmwareImage[]> {
    let q = this.db.selectFrom('firmware_images').selectAll().orderBy('version').orderBy('part_number');
    if (version !== undefined) q = q.where('version', '=', version);
    return (await q.execute()).map(Firmware.image);
  }

  async image(version: string, partNumber: string | null): Promise<FirmwareImage | undefined> {
    const r = await this.db.selectFrom('firmware_images').selectAll().where('version', '=', version).where('part_number', '=', partNumber ?? '').executeTakeFirst();
    return r ? Firmware.image(r) : undefined;
  }

  async deleteVersion(version: string): Promise<number> {
    return Number((await this.db.deleteFrom('firmware_images').where('version', '=', version).executeTakeFirst()).numDeletedRows);
  }

  async versionInUse(version: string): Promise<boolean> {
    if (await this.db.selectFrom('firmware_assignments').select('version').where('version', '=', version).executeTakeFirst()) return true;
    const live = await this.db.selectFrom('firmware_rollouts').select('body').where('state', 'in', ['canary', 'all', 'paused']).execute();
    return live.some((r) => parse<FirmwareRollout>(r.body).version === version);
  }

  async blobUsers(sha256: string): Promise<number> {
    const r = await this.db.selectFrom('firmware_images').select(sql<number>`count(*)`.as('n')).where('sha256', '=', sha256).executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async assignments(tenantId?: string): Promise<FirmwareAssignment[]> {
    let q = this.db.selectFrom('firmware_assignments').selectAll();
    if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
    return (await q.execute()).map((r) => ({
      tenantId: r.tenant_id,
      targetKind: r.target_kind as FirmwareAssignment['targetKind'],
      targetId: r.target_id,
      model: r.model || null,
      version: r.version,
      updatedAt: r.updated_at,
    }));
  }

  async putAssignment(a: FirmwareAssignment): Promise<void> {
    await this.db
      .insertInto('firmware_assignments')
      .values({ tenant_id: a.tenantId, target_kind: a.targetKind, target_id: a.targetId, model: a.model ?? '', version: a.version, updated_at: a.updatedAt })
      .onConflict((oc) => oc.columns(['tenant_id', 'target_kind', 'target_id', 'model']).doUpdateSet({ version: a.version, updated_at: a.updatedAt }))
      .execute();
  }

  async deleteAssignment(tenantId: string, kind: string, targetId: string, model: string | null): Promise<boolean> {
    const res = await this.db
      .deleteFrom('firmware_assignments')
      .where('tenant_id', '=', tenantId)
      .where('target_kind', '=', kind)
      .where('target_id', '=', targetId)
      .where('model', '=', model ?? '')
      .executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  async rollouts(tenantId?: string): Promise<FirmwareRollout[]> {
    let q = this.db.selectFrom('firmware_rollouts').selectAll().orderBy('created_at');
    if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
    return (await q.execute()).map((r) => ({ ...parse<FirmwareRollout>(r.body), state: r.state as FirmwareRollout['state'] }));
  }

  async putRollout(r: FirmwareRollout): Promise<void> {
    const values = { body: json(r), state: r.state, updated_at: r.updatedAt };
    await this.db
      .insertInto('firmware_rollouts')
      .values({ id: r.id, tenant_id: r.tenantId, created_at: r.createdAt, ...values })
      .onConflict((oc) => oc.column('id').doUpdateSet(values))
      .execute();
  }
}

const ipOrder = (ip: string): number => ip.split('.').reduce((a, p) => a * 256 + Number(p), 0);

/** The store over any Kysely database; dialect-specific set-up lives in `sqlite.ts` (and later `postgres.ts`). */
export class KyselyStore implements Store {
  readonly tenants: Tenants;
  readonly sites: Sites;
  readonly groups: Groups;
  readonly devices: Devices;
  readonly profiles: Profiles;
  readonly assignments: Assignments;
  readonly users: Users;
  readonly tokens: Tokens;
  readonly rendered: Rendered;
  readonly audit: Audit;
  readonly dhcpLeases: DhcpLeases;
  readonly links: AccountLinks;
  readonly redaction: RedactionOps;
  readonly firmware: Firmware;

  constructor(
    readonly kind: 'sqlite' | 'postgres',
    private readonly db: Db,
    private readonly onClose: () => Promise<void>,
    private readonly box: SecretBox,
    private readonly inTransaction = false,
  ) {
    this.assignments = new Assignments(db);
    this.tenants = new Tenants(db, this.assignments, box);
    this.sites = new Sites(db, this.assignments);
    this.groups = new Groups(db, this.assignments);
    this.devices = new Devices(db, this.assignments, box);
    this.profiles = new Profiles(db, box);
    this.users = new Users(db);
    this.tokens = new Tokens(db);
    this.rendered = new Rendered(db, box);
    this.audit = new Audit(db);
    this.dhcpLeases = new DhcpLeases(db);
    this.links = new AccountLinks(db);
    this.firmware = new Firmware(db);
    const root = db as Kysely<Database>;
    this.redaction = {
      purgeTenant: (id) => purgeTenant(root, id),
      anonymize: (scope) => anonymize(root, scope),
      compact: () => compact(root),
    };
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.onClose();
  }

  /** A consistent copy of the whole database in a new file (SQLite `VACUUM INTO`). */
  async snapshot(to: string): Promise<void> {
    await sql`VACUUM INTO ${to}`.execute(this.db);
  }

  async transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn(this);
    return this.db.transaction().execute((trx: Transaction<Database>) => fn(new KyselyStore(this.kind, trx, async () => {}, this.box, true)));
  }

  /** Re-seals every secret under `to` in one transaction (`edgeprov rotate-key`); returns how many. */
  async reseal(to: SecretBox): Promise<number> {
    let n = 0;
    const from = this.box;
    const again = (v: string) => {
      n++;
      return to.seal(from.open(v));
    };
    await this.db.transaction().execute(async (trx) => {
      for (const t of await trx.selectFrom('tenants').select(['id', 'prov_password', 'prov_prev_password']).execute()) {
        await trx
          .updateTable('tenants')
          .set({ prov_password: again(t.prov_password), prov_prev_password: t.prov_prev_password ? again(t.prov_prev_password) : null })
          .where('id', '=', t.id)
          .execute();
      }
      const resealParams = (text: string) =>
        json(Object.fromEntries(Object.entries(parse<Record<string, string>>(text)).map(([k, v]) => [k, SECRET_PARAM.test(k) ? again(v) : v])));
      for (const d of await trx.selectFrom('devices').select(['id', 'lines', 'params', 'prov_password']).execute()) {
        const lines = parse<Device['lines']>(d.lines).map((l) => (l.authPassword !== undefined ? { ...l, authPassword: again(l.authPassword) } : l));
        await trx
          .updateTable('devices')
          .set({ lines: json(lines), params: resealParams(d.params), prov_password: d.prov_password ? again(d.prov_password) : null })
          .where('id', '=', d.id)
          .execute();
      }
      for (const p of await trx.selectFrom('profiles').select(['id', 'params']).execute()) {
        await trx.updateTable('profiles').set({ params: resealParams(p.params) }).where('id', '=', p.id).execute();
      }
      for (const r of await trx.selectFrom('rendered_files').select(['device_id', 'name', 'body']).execute()) {
        await trx.updateTable('rendered_files').set({ body: again(r.body) }).where('device_id', '=', r.device_id).where('name', '=', r.name).execute();
      }
    });
    return n;
  }
}
