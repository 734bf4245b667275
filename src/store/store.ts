import type {
  AuditEvent,
  AssignmentTarget,
  Device,
  DhcpLease,
  FirmwareAssignment,
  FirmwareImage,
  FirmwareRollout,
  DeviceState,
  Group,
  LastSeen,
  Page,
  PageRequest,
  Profile,
  Site,
  Tenant,
  Token,
  User,
  UserWithSecret,
} from '../domain/types.ts';

import type { AnonymizeScope, Replacements } from './redaction.ts';

/**
 * The one storage interface. Every method that touches tenant data takes the tenant id and only
 * ever sees rows of that tenant: tenant isolation lives here, not in each route. Implementations:
 * SQLite (embedded default, `sqlite.ts`); PostgreSQL follows with the same queries.
 */
export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Throws when the database cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** Runs `fn` in one transaction: all of it is applied, or none. */
  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T>;

  tenants: TenantRepo;
  sites: SiteRepo;
  groups: GroupRepo;
  devices: DeviceRepo;
  profiles: ProfileRepo;
  assignments: AssignmentRepo;
  users: UserRepo;
  tokens: TokenRepo;
  rendered: RenderedRepo;
  audit: AuditRepo;
  dhcpLeases: DhcpLeaseRepo;
  links: AccountLinkRepo;
  /** Purge and anonymization: the only writers allowed past the audit trail's append-only rule. */
  redaction: RedactionOps;
  firmware: FirmwareRepo;
}

export interface FirmwareRepo {
  putImage(image: FirmwareImage): Promise<void>;
  images(version?: string): Promise<FirmwareImage[]>;
  image(version: string, partNumber: string | null): Promise<FirmwareImage | undefined>;
  deleteVersion(version: string): Promise<number>;
  /** Whether any tenant assigns or rolls out this version (it cannot be deleted then). */
  versionInUse(version: string): Promise<boolean>;
  /** Other images still pointing at a blob (before the blob is removed). */
  blobUsers(sha256: string): Promise<number>;
  assignments(tenantId?: string): Promise<FirmwareAssignment[]>;
  putAssignment(a: FirmwareAssignment): Promise<void>;
  deleteAssignment(tenantId: string, kind: string, targetId: string, model: string | null): Promise<boolean>;
  rollouts(tenantId?: string): Promise<FirmwareRollout[]>;
  putRollout(r: FirmwareRollout): Promise<void>;
}

export interface RedactionOps {
  /** Removes the tenant and every row of it, its audit events included; rows removed per table. */
  purgeTenant(tenantId: string): Promise<Record<string, number>>;
  anonymize(scope: AnonymizeScope): Promise<Replacements>;
  /** Flushes the WAL into the database file and truncates it (nothing replaced lingers there). */
  compact(): Promise<void>;
}

/** A single-use link mailed to a user: activation of an invited account, or a password reset. */
export interface AccountLink {
  id: string;
  userId: string;
  purpose: 'activate' | 'reset';
  /** sha256 of the token in the link; the token itself is never stored. */
  tokenHash: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
}

export interface AccountLinkRepo {
  insert(link: AccountLink): Promise<void>;
  findByHash(hash: string): Promise<AccountLink | undefined>;
  /** Marks the link used; `false` when it was used (or revoked) already. */
  consume(id: string, now: string): Promise<boolean>;
  /** Ends every open link of a user: a new link replaces the old ones, a new password ends all. */
  revokeForUser(userId: string, now: string): Promise<void>;
}

/** Leases of the built-in DHCP server, one row per (site, address). */
export interface DhcpLeaseRepo {
  /** Every lease of every site: the server loads them at start. */
  all(): Promise<DhcpLease[]>;
  list(tenantId: string, siteId: string): Promise<DhcpLease[]>;
  /** Inserts or replaces the lease of `lease.ip` in `lease.siteId`. */
  put(lease: DhcpLease): Promise<void>;
  delete(siteId: string, ip: string): Promise<void>;
}

export interface AuditFilter {
  action?: string;
  actor?: string;
  since?: string;
  until?: string;
}

/** The audit trail: append and read only (the database refuses updates and deletes). */
export interface AuditRepo {
  append(e: Omit<AuditEvent, 'seq'>): Promise<void>;
  /** `tenantId` null: the system trail. Newest first. */
  list(tenantId: string | null, filter: AuditFilter, page: PageRequest): Promise<Page<AuditEvent>>;
}

export interface TenantRow extends Omit<Tenant, 'profileIds'> {
  provisioningPassword: string;
  /** The password before the last rotation, still accepted until `previousValidUntil`. */
  previousPassword?: string | null;
  previousValidUntil?: string | null;
}

export interface TenantRepo {
  insert(row: TenantRow): Promise<void>;
  get(id: string): Promise<Tenant | undefined>;
  /** Provisioning secrets are kept off the plain tenant view. */
  getWithSecrets(id: string): Promise<TenantRow | undefined>;
  getByProvisioningKey(key: string): Promise<Tenant | undefined>;
  /** `get` and the rest skip tenants marked for deletion; this one does not (restore, purge). */
  getIncludingDeleted(id: string): Promise<Tenant | undefined>;
  listDeleted(): Promise<Tenant[]>;
  setDeletion(id: string, deletion: Tenant['deletion'], now: string): Promise<boolean>;
  setSubscriptionEnd(id: string, endsAt: string | null, now: string): Promise<boolean>;
  /** Tenants whose grace period is over, or whose subscription ended before `subscriptionCutoff`. */
  dueForPurge(now: string, subscriptionCutoff: string): Promise<Array<{ id: string; reason: 'deletion' | 'subscription' }>>;
  getBySlug(slug: string): Promise<Tenant | undefined>;
  /** `ids` limits the list (a tenant user sees only their own tenant). */
  list(page: PageRequest, ids?: string[]): Promise<Page<Tenant>>;
  update(
    id: string,
    patch: Partial<Pick<TenantRow, 'name' | 'slug' | 'settings' | 'provisioningPassword' | 'previousPassword' | 'previousValidUntil'>>,
    now: string,
  ): Promise<boolean>;
  delete(id: string): Promise<boolean>;
}

export type SiteRow = Omit<Site, 'profileIds' | 'deviceCount'>;
export interface SiteRepo {
  insert(row: SiteRow): Promise<void>;
  get(tenantId: string, id: string): Promise<Site | undefined>;
  list(tenantId: string, page: PageRequest): Promise<Page<Site>>;
  /** Every site of the tenant, unpaged: for subnet checks. */
  all(tenantId: string): Promise<Site[]>;
  update(tenantId: string, id: string, patch: Partial<Omit<SiteRow, 'id' | 'tenantId' | 'createdAt'>>): Promise<boolean>;
  delete(tenantId: string, id: string): Promise<boolean>;
}

export type GroupRow = Omit<Group, 'profileIds' | 'deviceCount'>;
export interface GroupRepo {
  insert(row: GroupRow): Promise<void>;
  get(tenantId: string, id: string): Promise<Group | undefined>;
  list(tenantId: string, page: PageRequest): Promise<Page<Group>>;
  /** Which of `ids` exist in the tenant. */
  existing(tenantId: string, ids: string[]): Promise<Set<string>>;
  update(tenantId: string, id: string, patch: Partial<Pick<GroupRow, 'name' | 'description' | 'updatedAt'>>): Promise<boolean>;
  delete(tenantId: string, id: string): Promise<boolean>;
}

export type DeviceRow = Omit<Device, 'groupIds' | 'profileIds'>;

export interface DeviceFilter {
  siteId?: string;
  groupId?: string;
  model?: string;
  state?: DeviceState;
  /** Lowercase hex without separators. */
  macPrefix?: string;
  label?: string;
  seenSince?: string;
  seenBefore?: string;
  /** Only devices never seen by the server. */
  neverSeen?: boolean;
}

export interface DeviceRepo {
  insert(row: DeviceRow, groupIds: string[]): Promise<void>;
  get(tenantId: string, id: string): Promise<Device | undefined>;
  getByMac(tenantId: string, mac: string): Promise<Device | undefined>;
  /** Whether any tenant holds this MAC (MACs are unique across the server). */
  macTaken(mac: string): Promise<boolean>;
  list(tenantId: string, filter: DeviceFilter, page: PageRequest): Promise<Page<Device>>;
  update(
    tenantId: string,
    id: string,
    patch: Partial<Omit<DeviceRow, 'id' | 'tenantId' | 'createdAt' | 'lastSeen' | 'renderError'>>,
    groupIds?: string[],
  ): Promise<boolean>;
  /** Records (or clears, with `null`) why the device's config cannot be rendered. */
  setRenderError(tenantId: string, id: string, error: DeviceRow['renderError']): Promise<void>;
  /** Ids and MACs of the devices that use a site, group or profile (for cache invalidation). */
  idsUsing(tenantId: string, ref: { siteId?: string; groupId?: string }): Promise<string[]>;
  /** Records many sightings in one write (the phone path batches them). */
  recordSeen(entries: Array<{ tenantId: string; id: string; lastSeen: LastSeen }>): Promise<void>;
  delete(tenantId: string, id: string): Promise<boolean>;
}

export type ProfileRow = Profile;
export interface ProfileRepo {
  insert(row: ProfileRow): Promise<void>;
  get(tenantId: string, id: string): Promise<Profile | undefined>;
  list(tenantId: string, page: PageRequest): Promise<Page<Profile>>;
  existing(tenantId: string, ids: string[]): Promise<Set<string>>;
  update(tenantId: string, id: string, patch: Partial<Pick<ProfileRow, 'name' | 'description' | 'params' | 'updatedAt'>>): Promise<boolean>;
  delete(tenantId: string, id: string): Promise<boolean>;
}

export interface AssignmentRepo {
  get(tenantId: string, kind: AssignmentTarget, targetId: string): Promise<string[]>;
  /** Replaces the ordered list of profiles assigned to a target. */
  set(tenantId: string, kind: AssignmentTarget, targetId: string, profileIds: string[]): Promise<void>;
  /** Where a profile is assigned. */
  usages(tenantId: string, profileId: string): Promise<Array<{ kind: AssignmentTarget; targetId: string }>>;
}

export interface RenderedFile {
  name: string;
  body: string;
  etag: string;
  renderedAt: string;
}

/** The last good render of each device file: what a phone gets while a new render fails. */
export interface RenderedRepo {
  get(tenantId: string, deviceId: string, name: string): Promise<RenderedFile | undefined>;
  put(tenantId: string, deviceId: string, file: RenderedFile): Promise<void>;
}

export interface UserRepo {
  insert(row: UserWithSecret): Promise<void>;
  /** `tenantId` null: system administrators only. */
  get(tenantId: string | null, id: string): Promise<User | undefined>;
  /** Unscoped, for sign-in and token checks only. */
  getWithSecretById(id: string): Promise<UserWithSecret | undefined>;
  getWithSecretByEmail(email: string): Promise<UserWithSecret | undefined>;
  list(tenantId: string, page: PageRequest): Promise<Page<User>>;
  countByRole(role: string): Promise<number>;
  update(
    tenantId: string | null,
    id: string,
    patch: Partial<Pick<UserWithSecret, 'name' | 'role' | 'disabled' | 'passwordHash' | 'passwordChangedAt' | 'updatedAt'>>,
  ): Promise<boolean>;
  delete(tenantId: string, id: string): Promise<boolean>;
}

export interface TokenRow extends Token {
  tokenHash: string;
}

export interface TokenRepo {
  insert(row: TokenRow): Promise<void>;
  findByHash(hash: string): Promise<TokenRow | undefined>;
  /** API tokens whose owner belongs to the tenant or that are limited to it; `userId` narrows further. */
  list(tenantId: string, userId?: string): Promise<Token[]>;
  get(tenantId: string, id: string): Promise<Token | undefined>;
  revoke(id: string, now: string): Promise<boolean>;
  revokeAllForUser(userId: string, now: string): Promise<number>;
  touch(id: string, now: string): Promise<void>;
  /** Drops expired and revoked session tokens older than `before`. */
  prune(before: string): Promise<number>;
}
