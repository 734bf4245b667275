import { randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { AppError, conflict, invalid, notFound, type FieldIssue } from '../errors.ts';
import type { DeviceFilter, Store } from '../store/store.ts';
import { normalizeMac } from './mac.ts';
import { cidrContains, cidrsOverlap, parseCidr, parseIp } from './net.ts';
import {
  deviceCreateSchema,
  deviceUpdateSchema,
  zodIssues,
  type DeviceCreate,
  type DeviceUpdate,
  type GroupCreate,
  type GroupUpdate,
  type ProfileCreate,
  type ProfileUpdate,
  type SiteCreate,
  type SiteUpdate,
  type TenantCreate,
  type TenantUpdate,
} from './schemas.ts';
import {
  DEFAULT_SITE_DHCP,
  DEFAULT_TENANT_SETTINGS,
  type SiteDhcp,
  type Device,
  type Group,
  type Page,
  type PageRequest,
  type Profile,
  type SipLine,
  type Site,
  type Tenant,
} from './types.ts';

/** Emitted after every change that can alter what a phone receives (render caches listen). */
export type ChangeListener = (change: { tenantId: string; kind: string; id: string }) => void;

export interface DomainDeps {
  store: Store;
  clock: Clock;
}

const slugify = (s: string): string =>
  s
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40) || 'tenant';

/** A random secret of URL-safe characters, no look-alikes. */
export function randomSecret(length: number): string {
  const alphabet = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const bytes = randomBytes(length * 2);
  let out = '';
  for (let i = 0; i < bytes.length && out.length < length; i++) {
    const b = bytes[i] as number;
    if (b < 256 - (256 % alphabet.length)) out += alphabet[b % alphabet.length];
  }
  return out.length === length ? out : randomSecret(length);
}

export interface BulkItemResult {
  index: number;
  ok: boolean;
  op: 'create' | 'update';
  id?: string;
  mac?: string;
  errors?: FieldIssue[];
}

class Rollback extends Error {}

/**
 * Business rules for the inventory: tenants, sites, groups, devices and profiles. Every method
 * that reads or writes tenant data takes the tenant id and goes through the store with it.
 */
export class Inventory {
  readonly #listeners = new Set<ChangeListener>();

  constructor(private readonly deps: DomainDeps) {}

  private get store(): Store {
    return this.deps.store;
  }

  private now(): string {
    return this.deps.clock.now().toISOString();
  }

  onChange(fn: ChangeListener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Tells the caches that something outside the inventory (purge, anonymization) changed data. */
  announce(tenantId: string, kind: 'tenant' | 'device', id: string): void {
    this.changed(tenantId, kind, id);
  }

  private changed(tenantId: string, kind: string, id: string): void {
    for (const fn of this.#listeners) fn({ tenantId, kind, id });
  }

  private async checkProfiles(store: Store, tenantId: string, ids: string[] | undefined, path = 'profileIds'): Promise<void> {
    if (!ids?.length) return;
    const found = await store.profiles.existing(tenantId, ids);
    const missing = ids.map((id, i) => ({ id, i })).filter(({ id }) => !found.has(id));
    if (missing.length) throw invalid(missing.map(({ id, i }) => ({ path: `${path}.${i}`, message: `unknown profile ${id}` })));
  }

  // ---- tenants -------------------------------------------------------------------------------

  async createTenant(input: TenantCreate): Promise<Tenant> {
    const t = await this.#createTenant(input);
    this.changed(t.id, 'tenant', t.id);
    return t;
  }

  async #createTenant(input: TenantCreate): Promise<Tenant> {
    const now = this.now();
    const id = randomUUID();
    return this.store.transaction(async (tx) => {
      let slug = input.slug ?? slugify(input.name);
      if (await tx.tenants.getBySlug(slug)) {
        // A derived slug gets a short suffix on collision; an explicit one is the caller's to fix.
        if (input.slug) throw conflict(`a tenant with slug "${slug}" already exists`, [{ path: 'slug', message: 'already taken' }]);
        slug = `${slug.slice(0, 33)}-${randomSecret(6).toLowerCase()}`;
      }
      await tx.tenants.insert({
        id,
        name: input.name,
        slug,
        provisioning: { key: randomSecret(24), username: `prov-${slug}`.slice(0, 64) },
        provisioningPassword: randomSecret(24),
        settings: { ...DEFAULT_TENANT_SETTINGS, ...input.settings },
        deletion: null,
        subscriptionEndsAt: null,
        createdAt: now,
        updatedAt: now,
      });
      return (await tx.tenants.get(id)) as Tenant;
    });
  }

  async getTenant(id: string): Promise<Tenant> {
    const t = await this.store.tenants.get(id);
    if (!t) throw notFound('tenant');
    return t;
  }

  listTenants(page: PageRequest, onlyIds?: string[]): Promise<Page<Tenant>> {
    return this.store.tenants.list(page, onlyIds);
  }

  async updateTenant(id: string, patch: TenantUpdate): Promise<Tenant> {
    const t = await this.store.transaction(async (tx) => {
      const cur = await tx.tenants.get(id);
      if (!cur) throw notFound('tenant');
      if (patch.slug && patch.slug !== cur.slug && (await tx.tenants.getBySlug(patch.slug))) {
        throw conflict(`a tenant with slug "${patch.slug}" already exists`, [{ path: 'slug', message: 'already taken' }]);
      }
      await this.checkProfiles(tx, id, patch.profileIds);
      await tx.tenants.update(
        id,
        {
          ...(patch.name !== undefined && { name: patch.name }),
          ...(patch.slug !== undefined && { slug: patch.slug }),
          ...(patch.settings !== undefined && { settings: { ...cur.settings, ...patch.settings } }),
        },
        this.now(),
      );
      if (patch.profileIds) await tx.assignments.set(id, 'tenant', id, patch.profileIds);
      return (await tx.tenants.get(id)) as Tenant;
    });
    this.changed(id, 'tenant', id);
    return t;
  }

  /** The tenant with its provisioning secrets, for the admins allowed to see them. */
  async tenantSecrets(id: string) {
    const t = await this.store.tenants.getWithSecrets(id);
    if (!t) throw notFound('tenant');
    return t;
  }

  /**
   * A new provisioning password; the old one stays valid for `graceSeconds` so phones that have
   * not fetched the new config yet can still reach the server.
   */
  async rotateProvisioningPassword(id: string, graceSeconds: number): Promise<void> {
    await this.store.transaction(async (tx) => {
      const cur = await tx.tenants.getWithSecrets(id);
      if (!cur) throw notFound('tenant');
      const now = this.deps.clock.now();
      await tx.tenants.update(
        id,
        {
          provisioningPassword: randomSecret(24),
          previousPassword: graceSeconds > 0 ? cur.provisioningPassword : null,
          previousValidUntil: graceSeconds > 0 ? new Date(now.getTime() + graceSeconds * 1000).toISOString() : null,
        },
        now.toISOString(),
      );
    });
    this.changed(id, 'tenant', id);
  }

  // ---- sites ---------------------------------------------------------------------------------

  private async checkSubnets(store: Store, tenantId: string, subnets: string[], selfId?: string): Promise<void> {
    const mine = subnets.map((s) => parseCidr(s)).filter((c) => c !== undefined);
    const issues: FieldIssue[] = [];
    mine.forEach((a, i) =>
      mine.slice(i + 1).forEach((b, j) => {
        if (cidrsOverlap(a, b)) issues.push({ path: `subnets.${i + j + 1}`, message: `overlaps ${a.text}` });
      }),
    );
    if (issues.length) throw invalid(issues);
    for (const site of await store.sites.all(tenantId)) {
      if (site.id === selfId) continue;
      for (const [i, a] of mine.entries()) {
        const hit = site.subnets.find((s) => {
          const b = parseCidr(s);
          return b !== undefined && cidrsOverlap(a, b);
        });
        if (hit) issues.push({ path: `subnets.${i}`, message: `overlaps ${hit} of site "${site.name}"` });
      }
    }
    if (issues.length) throw conflict('a subnet overlaps another site of this tenant', issues);
  }

  /** The DHCP settings must fit the site's IPv4 subnets: ranges, reservations and the pool size. */
  private checkDhcp(subnets: string[], dhcp: SiteDhcp): void {
    const v4 = subnets.map((s) => parseCidr(s)).filter((c) => c?.family === 4) as NonNullable<ReturnType<typeof parseCidr>>[];
    const issues: FieldIssue[] = [];
    const within = (ip: string) => v4.find((c) => cidrContains(c, ip));
    if (dhcp.enabled && v4.length === 0) issues.push({ path: 'dhcp.enabled', message: 'the site needs an IPv4 subnet to hand out addresses from' });
    dhcp.ranges.forEach((r, i) => {
      const a = parseIp(r.start)?.value ?? 0n;
      const b = parseIp(r.end)?.value ?? 0n;
      const net = within(r.start);
      if (!net || net !== within(r.end)) issues.push({ path: `dhcp.ranges.${i}`, message: 'start and end must lie in the same IPv4 subnet of the site' });
      else if (a > b) issues.push({ path: `dhcp.ranges.${i}`, message: 'start is after end' });
      else if (b - a >= 65536n) issues.push({ path: `dhcp.ranges.${i}`, message: 'at most 65536 addresses per range' });
    });
    dhcp.reservations.forEach((r, i) => {
      if (!within(r.ip)) issues.push({ path: `dhcp.reservations.${i}.ip`, message: `${r.ip} is not in a subnet of the site` });
    });
    if (issues.length) throw invalid(issues);
  }

  async createSite(tenantId: string, input: SiteCreate): Promise<Site> {
    const site = await this.#createSite(tenantId, input);
    // A new subnet can change which tenant a TFTP phone belongs to.
    this.changed(tenantId, 'site', site.id);
    return site;
  }

  async #createSite(tenantId: string, input: SiteCreate): Promise<Site> {
    const now = this.now();
    const id = randomUUID();
    return this.store.transaction(async (tx) => {
      await this.checkSubnets(tx, tenantId, input.subnets ?? []);
      const dhcp: SiteDhcp = { ...DEFAULT_SITE_DHCP, ...input.dhcp };
      this.checkDhcp(input.subnets ?? [], dhcp);
      await this.checkProfiles(tx, tenantId, input.profileIds);
      await this.uniqueName(tx.sites.all(tenantId), input.name, 'site');
      await tx.sites.insert({
        id,
        tenantId,
        name: input.name,
        description: input.description ?? '',
        location: input.location ?? '',
        subnets: input.subnets ?? [],
        timeZone: input.timeZone ?? 'UTC',
        sip: input.sip ?? {},
        ntp: input.ntp ?? {},
        dhcp,
        createdAt: now,
        updatedAt: now,
      });
      if (input.profileIds?.length) await tx.assignments.set(tenantId, 'site', id, input.profileIds);
      return (await tx.sites.get(tenantId, id)) as Site;
    });
  }

  private async uniqueName(existing: Promise<Array<{ id: string; name: string }>>, name: string, what: string, selfId?: string): Promise<void> {
    const lower = name.toLowerCase();
    if ((await existing).some((e) => e.id !== selfId && e.name.toLowerCase() === lower)) {
      throw conflict(`a ${what} named "${name}" already exists`, [{ path: 'name', message: 'already taken' }]);
    }
  }

  async getSite(tenantId: string, id: string): Promise<Site> {
    const s = await this.store.sites.get(tenantId, id);
    if (!s) throw notFound('site');
    return s;
  }

  listSites(tenantId: string, page: PageRequest): Promise<Page<Site>> {
    return this.store.sites.list(tenantId, page);
  }

  async updateSite(tenantId: string, id: string, patch: SiteUpdate): Promise<Site> {
    const site = await this.store.transaction(async (tx) => {
      const cur = await tx.sites.get(tenantId, id);
      if (!cur) throw notFound('site');
      if (patch.subnets) await this.checkSubnets(tx, tenantId, patch.subnets, id);
      if (patch.name) await this.uniqueName(tx.sites.all(tenantId), patch.name, 'site', id);
      await this.checkProfiles(tx, tenantId, patch.profileIds);
      const { profileIds, dhcp: dhcpPatch, ...rest } = patch;
      const dhcp: SiteDhcp = { ...cur.dhcp, ...dhcpPatch };
      if (dhcpPatch || patch.subnets) this.checkDhcp(patch.subnets ?? cur.subnets, dhcp);
      await tx.sites.update(tenantId, id, { ...rest, ...(dhcpPatch && { dhcp }), updatedAt: this.now() });
      if (profileIds) await tx.assignments.set(tenantId, 'site', id, profileIds);
      return (await tx.sites.get(tenantId, id)) as Site;
    });
    this.changed(tenantId, 'site', id);
    return site;
  }

  async deleteSite(tenantId: string, id: string): Promise<void> {
    await this.store.transaction(async (tx) => {
      const cur = await tx.sites.get(tenantId, id);
      if (!cur) throw notFound('site');
      if (cur.deviceCount > 0) {
        throw conflict(`site "${cur.name}" still has ${cur.deviceCount} device(s); move or delete them first`);
      }
      await tx.sites.delete(tenantId, id);
    });
    this.changed(tenantId, 'site', id);
  }

  // ---- groups --------------------------------------------------------------------------------

  async createGroup(tenantId: string, input: GroupCreate): Promise<Group> {
    const now = this.now();
    const id = randomUUID();
    return this.store.transaction(async (tx) => {
      await this.uniqueName(tx.groups.list(tenantId, { limit: 1_000_000, offset: 0 }).then((p) => p.items), input.name, 'group');
      await this.checkProfiles(tx, tenantId, input.profileIds);
      await tx.groups.insert({ id, tenantId, name: input.name, description: input.description ?? '', createdAt: now, updatedAt: now });
      if (input.profileIds?.length) await tx.assignments.set(tenantId, 'group', id, input.profileIds);
      return (await tx.groups.get(tenantId, id)) as Group;
    });
  }

  async getGroup(tenantId: string, id: string): Promise<Group> {
    const g = await this.store.groups.get(tenantId, id);
    if (!g) throw notFound('group');
    return g;
  }

  listGroups(tenantId: string, page: PageRequest): Promise<Page<Group>> {
    return this.store.groups.list(tenantId, page);
  }

  async updateGroup(tenantId: string, id: string, patch: GroupUpdate): Promise<Group> {
    const g = await this.store.transaction(async (tx) => {
      if (!(await tx.groups.get(tenantId, id))) throw notFound('group');
      if (patch.name) {
        await this.uniqueName(tx.groups.list(tenantId, { limit: 1_000_000, offset: 0 }).then((p) => p.items), patch.name, 'group', id);
      }
      await this.checkProfiles(tx, tenantId, patch.profileIds);
      await tx.groups.update(tenantId, id, {
        ...(patch.name !== undefined && { name: patch.name }),
        ...(patch.description !== undefined && { description: patch.description }),
        updatedAt: this.now(),
      });
      if (patch.profileIds) await tx.assignments.set(tenantId, 'group', id, patch.profileIds);
      return (await tx.groups.get(tenantId, id)) as Group;
    });
    this.changed(tenantId, 'group', id);
    return g;
  }

  async deleteGroup(tenantId: string, id: string): Promise<void> {
    if (!(await this.store.transaction((tx) => tx.groups.delete(tenantId, id)))) throw notFound('group');
    this.changed(tenantId, 'group', id);
  }

  // ---- devices -------------------------------------------------------------------------------

  /** A device by its id or by its MAC in any accepted spelling. */
  async resolveDevice(tenantId: string, idOrMac: string, store: Store = this.store): Promise<Device> {
    const mac = normalizeMac(idOrMac);
    const d = mac ? await store.devices.getByMac(tenantId, mac) : await store.devices.get(tenantId, idOrMac);
    if (!d) throw notFound('device');
    return d;
  }

  private async checkDeviceRefs(store: Store, tenantId: string, input: DeviceUpdate): Promise<void> {
    const issues: FieldIssue[] = [];
    if (input.siteId && !(await store.sites.get(tenantId, input.siteId))) {
      issues.push({ path: 'siteId', message: `unknown site ${input.siteId}` });
    }
    if (input.groupIds?.length) {
      const found = await store.groups.existing(tenantId, input.groupIds);
      input.groupIds.forEach((g, i) => {
        if (!found.has(g)) issues.push({ path: `groupIds.${i}`, message: `unknown group ${g}` });
      });
    }
    if (input.profileIds?.length) {
      const found = await store.profiles.existing(tenantId, input.profileIds);
      input.profileIds.forEach((p, i) => {
        if (!found.has(p)) issues.push({ path: `profileIds.${i}`, message: `unknown profile ${p}` });
      });
    }
    if (issues.length) throw invalid(issues);
  }

  private async insertDevice(tx: Store, tenantId: string, input: DeviceCreate): Promise<Device> {
    await this.checkDeviceRefs(tx, tenantId, input);
    if (await tx.devices.macTaken(input.mac)) {
      throw conflict(`a device with MAC ${input.mac} already exists`, [{ path: 'mac', message: 'already registered' }]);
    }
    const now = this.now();
    const id = randomUUID();
    await tx.devices.insert(
      {
        id,
        tenantId,
        mac: input.mac,
        model: input.model ?? null,
        name: input.name ?? '',
        siteId: input.siteId ?? null,
        labels: [...new Set(input.labels ?? [])],
        lines: sortLines(input.lines ?? []),
        params: input.params ?? {},
        state: input.state ?? 'active',
        lastSeen: null,
        credentials: input.credentials ?? null,
        renderError: null,
        createdAt: now,
        updatedAt: now,
      },
      input.groupIds ?? [],
    );
    if (input.profileIds?.length) await tx.assignments.set(tenantId, 'device', id, input.profileIds);
    return (await tx.devices.get(tenantId, id)) as Device;
  }

  private async patchDevice(tx: Store, tenantId: string, idOrMac: string, patch: DeviceUpdate): Promise<Device> {
    const cur = await this.resolveDevice(tenantId, idOrMac, tx);
    await this.checkDeviceRefs(tx, tenantId, patch);
    if (patch.mac && patch.mac !== cur.mac && (await tx.devices.macTaken(patch.mac))) {
      throw conflict(`a device with MAC ${patch.mac} already exists`, [{ path: 'mac', message: 'already registered' }]);
    }
    const { groupIds, profileIds, lines, labels, ...rest } = patch;
    await tx.devices.update(
      tenantId,
      cur.id,
      {
        ...rest,
        ...(labels && { labels: [...new Set(labels)] }),
        ...(lines && { lines: sortLines(mergeLinePasswords(cur.lines, lines)) }),
        updatedAt: this.now(),
      },
      groupIds,
    );
    if (profileIds) await tx.assignments.set(tenantId, 'device', cur.id, profileIds);
    return (await tx.devices.get(tenantId, cur.id)) as Device;
  }

  async createDevice(tenantId: string, input: DeviceCreate): Promise<Device> {
    const d = await this.store.transaction((tx) => this.insertDevice(tx, tenantId, input));
    this.changed(tenantId, 'device', d.id);
    return d;
  }

  getDevice(tenantId: string, idOrMac: string): Promise<Device> {
    return this.resolveDevice(tenantId, idOrMac);
  }

  listDevices(tenantId: string, filter: DeviceFilter, page: PageRequest): Promise<Page<Device>> {
    return this.store.devices.list(tenantId, filter, page);
  }

  async updateDevice(tenantId: string, idOrMac: string, patch: DeviceUpdate): Promise<Device> {
    const d = await this.store.transaction((tx) => this.patchDevice(tx, tenantId, idOrMac, patch));
    this.changed(tenantId, 'device', d.id);
    return d;
  }

  async deleteDevice(tenantId: string, idOrMac: string): Promise<void> {
    const id = await this.store.transaction(async (tx) => {
      const d = await this.resolveDevice(tenantId, idOrMac, tx);
      await tx.devices.delete(tenantId, d.id);
      return d.id;
    });
    this.changed(tenantId, 'device', id);
  }

  /**
   * Creates and updates many devices at once. Each item is validated on its own and reported; with
   * `dryRun` nothing changes, otherwise either every item applies or none does.
   */
  async bulkDevices(
    tenantId: string,
    items: Array<{ op: 'create'; device: unknown } | { op: 'update'; idOrMac: string; device: unknown }>,
    dryRun: boolean,
  ): Promise<{ dryRun: boolean; applied: boolean; results: BulkItemResult[] }> {
    const results: BulkItemResult[] = [];
    const run = async (tx: Store): Promise<void> => {
      for (const [index, item] of items.entries()) {
        try {
          if (item.op === 'create') {
            const parsed = deviceCreateSchema.safeParse(item.device);
            if (!parsed.success) throw invalid(zodIssues(parsed.error, 'device'));
            const d = await this.insertDevice(tx, tenantId, parsed.data);
            results.push({ index, ok: true, op: 'create', id: d.id, mac: d.mac });
          } else {
            const parsed = deviceUpdateSchema.safeParse(item.device);
            if (!parsed.success) throw invalid(zodIssues(parsed.error, 'device'));
            const d = await this.patchDevice(tx, tenantId, item.idOrMac, parsed.data);
            results.push({ index, ok: true, op: 'update', id: d.id, mac: d.mac });
          }
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          results.push({ index, ok: false, op: item.op, errors: err.details ?? [{ path: '', message: err.message }] });
        }
      }
      if (dryRun || results.some((r) => !r.ok)) throw new Rollback();
    };
    try {
      await this.store.transaction(run);
    } catch (err) {
      if (!(err instanceof Rollback)) throw err;
      return { dryRun, applied: false, results: dryRun ? results : results };
    }
    for (const r of results) if (r.id) this.changed(tenantId, 'device', r.id);
    return { dryRun, applied: true, results };
  }

  // ---- profiles ------------------------------------------------------------------------------

  async createProfile(tenantId: string, input: ProfileCreate): Promise<Profile> {
    const now = this.now();
    const id = randomUUID();
    return this.store.transaction(async (tx) => {
      await this.uniqueName(tx.profiles.list(tenantId, { limit: 1_000_000, offset: 0 }).then((p) => p.items), input.name, 'profile');
      await tx.profiles.insert({ id, tenantId, name: input.name, description: input.description ?? '', params: input.params ?? {}, createdAt: now, updatedAt: now });
      return (await tx.profiles.get(tenantId, id)) as Profile;
    });
  }

  async getProfile(tenantId: string, id: string): Promise<Profile> {
    const p = await this.store.profiles.get(tenantId, id);
    if (!p) throw notFound('profile');
    return p;
  }

  listProfiles(tenantId: string, page: PageRequest): Promise<Page<Profile>> {
    return this.store.profiles.list(tenantId, page);
  }

  async updateProfile(tenantId: string, id: string, patch: ProfileUpdate): Promise<Profile> {
    const p = await this.store.transaction(async (tx) => {
      if (!(await tx.profiles.get(tenantId, id))) throw notFound('profile');
      if (patch.name) {
        await this.uniqueName(tx.profiles.list(tenantId, { limit: 1_000_000, offset: 0 }).then((p) => p.items), patch.name, 'profile', id);
      }
      await tx.profiles.update(tenantId, id, { ...patch, updatedAt: this.now() });
      return (await tx.profiles.get(tenantId, id)) as Profile;
    });
    this.changed(tenantId, 'profile', id);
    return p;
  }

  async deleteProfile(tenantId: string, id: string): Promise<void> {
    await this.store.transaction(async (tx) => {
      if (!(await tx.profiles.get(tenantId, id))) throw notFound('profile');
      const uses = await tx.assignments.usages(tenantId, id);
      if (uses.length) {
        throw conflict(
          `profile is assigned to ${uses.length} target(s); unassign it first`,
          uses.slice(0, 20).map((u) => ({ path: u.kind, message: u.targetId })),
        );
      }
      await tx.profiles.delete(tenantId, id);
    });
    this.changed(tenantId, 'profile', id);
  }
}

function sortLines(lines: SipLine[]): SipLine[] {
  return [...lines].sort((a, b) => a.index - b.index);
}

/** A line sent without `authPassword` keeps the password its index had before. */
function mergeLinePasswords(old: SipLine[], next: SipLine[]): SipLine[] {
  const byIndex = new Map(old.map((l) => [l.index, l]));
  return next.map((l) => {
    const prev = byIndex.get(l.index);
    return l.authPassword === undefined && prev?.authPassword !== undefined ? { ...l, authPassword: prev.authPassword } : l;
  });
}
