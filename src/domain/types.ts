import type { Role } from './roles.ts';

/** Tenant-wide behaviour a tenant admin sets; later issues add provisioning switches here. */
export interface TenantSettings {
  /** Accept HTTP Basic credentials from phones over plain HTTP. @default false */
  allowBasicOverHttp: boolean;
  /** What happens when an unknown MAC asks for its master file. @default "off" */
  autoClaim: 'off' | 'any' | 'site-subnets';
  /** Serve this tenant's phones over TFTP (no credentials: by site subnet or key prefix). @default true */
  tftp: boolean;
}

export const DEFAULT_TENANT_SETTINGS: TenantSettings = { allowBasicOverHttp: false, autoClaim: 'off', tftp: true };

export interface Tenant {
  id: string;
  name: string;
  slug: string;
  provisioning: { key: string; username: string };
  settings: TenantSettings;
  /** Profiles applied to every device of the tenant, lowest precedence first. */
  profileIds: string[];
  /** Set when the tenant is marked for deletion: unreachable at once, purged after `purgeAfter`. */
  deletion: { requestedAt: string; purgeAfter: string } | null;
  /** When the subscription ends; the tenant is purged a retention period (365 days) later. */
  subscriptionEndsAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export const SIP_TRANSPORTS = ['UDPOnly', 'TCPOnly', 'TLS', 'DNSnaptr'] as const;
export type SipTransport = (typeof SIP_TRANSPORTS)[number];

export interface SipSettings {
  server?: string;
  port?: number;
  transport?: SipTransport;
  outboundProxy?: string;
}

export interface NtpSettings {
  server?: string;
}

/** Value types of an extra DHCP option a site sends (see `src/server/dhcp/`). */
export const DHCP_OPTION_TYPES = ['text', 'ip', 'ips', 'uint8', 'uint16', 'uint32', 'bool', 'hex'] as const;
export type DhcpOptionType = (typeof DHCP_OPTION_TYPES)[number];

/** The built-in DHCPv4 server's settings for one site (used only when the server is switched on). */
export interface SiteDhcp {
  enabled: boolean;
  /** Address ranges handed out, each inside one of the site's IPv4 subnets; empty: whole subnets. */
  ranges: Array<{ start: string; end: string }>;
  /** Option 3; the one inside the pool's subnet is sent. */
  routers: string[];
  /** Option 6. */
  dnsServers: string[];
  /** Option 42; empty: the site's NTP server when it is an address. */
  ntpServers: string[];
  /** Option 15. */
  domainName: string | null;
  leaseSeconds: number;
  /** Put the provisioning credentials into the option 160/66 URL. */
  credentialsInUrl: boolean;
  /** Further options; one with code 66 or 160 replaces the provisioning URL. */
  options: Array<{ code: number; type: DhcpOptionType; value: string }>;
  /** Fixed addresses by MAC (12 lowercase hex digits). */
  reservations: Array<{ mac: string; ip: string }>;
}

export const DEFAULT_SITE_DHCP: SiteDhcp = {
  enabled: false,
  ranges: [],
  routers: [],
  dnsServers: [],
  ntpServers: [],
  domainName: null,
  leaseSeconds: 86400,
  credentialsInUrl: true,
  options: [],
  reservations: [],
};

export interface Site {
  id: string;
  tenantId: string;
  name: string;
  description: string;
  location: string;
  /** Canonical CIDRs; a phone whose address falls in one belongs to this site. */
  subnets: string[];
  /** IANA time zone, e.g. `Europe/Berlin`. */
  timeZone: string;
  sip: SipSettings;
  ntp: NtpSettings;
  dhcp: SiteDhcp;
  profileIds: string[];
  deviceCount: number;
  createdAt: string;
  updatedAt: string;
}

export interface Group {
  id: string;
  tenantId: string;
  name: string;
  description: string;
  profileIds: string[];
  deviceCount: number;
  createdAt: string;
  updatedAt: string;
}

export interface SipLine {
  /** Line number on the phone, 1-based: becomes `reg.<index>.*`. */
  index: number;
  address: string;
  displayName?: string;
  label?: string;
  authUserId?: string;
  /** Write-only through the API; never returned. */
  authPassword?: string;
  server?: string;
  port?: number;
  transport?: SipTransport;
}

export const DEVICE_STATES = ['pending', 'active', 'disabled'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

export interface LastSeen {
  at: string;
  ip: string | null;
  userAgent: string | null;
  firmware: string | null;
}

export interface Device {
  id: string;
  tenantId: string;
  mac: string;
  model: string | null;
  name: string;
  siteId: string | null;
  groupIds: string[];
  labels: string[];
  lines: SipLine[];
  params: Record<string, string>;
  profileIds: string[];
  state: DeviceState;
  lastSeen: LastSeen | null;
  /** Own provisioning credentials, accepted for this phone's files besides the tenant's. */
  credentials: { username: string; password: string } | null;
  /** Why its config could not be rendered (it keeps getting the last good one). */
  renderError: RenderProblem | null;
  createdAt: string;
  updatedAt: string;
}

export interface RenderProblem {
  at: string;
  message: string;
  problems: string[];
}

export interface Profile {
  id: string;
  tenantId: string;
  name: string;
  description: string;
  params: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

export interface User {
  id: string;
  /** `null` for system administrators. */
  tenantId: string | null;
  email: string;
  name: string;
  role: Role;
  disabled: boolean;
  /** `false` while an invited user has not chosen a password yet. */
  activated: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface UserWithSecret extends User {
  passwordHash: string | null;
  passwordChangedAt: string | null;
}

export type TokenKind = 'session' | 'api';

export interface Token {
  id: string;
  userId: string;
  /** Tenant the token is limited to; `null` means the user's own reach. */
  tenantId: string | null;
  kind: TokenKind;
  name: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface PageRequest {
  limit: number;
  offset: number;
}

/** Where a profile can be assigned. */
export type AssignmentTarget = 'tenant' | 'site' | 'group' | 'device';

/** One entry of the append-only audit trail. */
export interface AuditEvent {
  seq: number;
  at: string;
  /** `null`: a system-wide event (tenants created or deleted, sign-ins of system administrators). */
  tenantId: string | null;
  actorId: string | null;
  /** Email of the user, `cli`, or the email tried in a failed sign-in. */
  actor: string;
  ip: string | null;
  /** The API operation (`updateDevice` …), `signIn`, `signInFailed`, `cli.init` … */
  action: string;
  target: string;
  outcome: 'success' | 'failure';
  /** State before and after, secrets masked. */
  before: unknown;
  after: unknown;
}

/** An address the built-in DHCP server handed out (or set aside), as stored. */
export interface DhcpLease {
  tenantId: string;
  siteId: string;
  ip: string;
  /** 12 lowercase hex digits. */
  mac: string;
  /** `declined`: a client found the address in use; it is set aside until `expiresAt`. */
  state: 'bound' | 'released' | 'declined';
  expiresAt: string;
  hostname: string | null;
  updatedAt: string;
}

/** One firmware image in the catalogue: a version's image for one part number (or the combined one). */
export interface FirmwareImage {
  version: string;
  /** `null` for a combined `sip.ld` serving every model. */
  partNumber: string | null;
  models: string[];
  sha256: string;
  size: number;
  fileName: string;
  createdAt: string;
}

export type FirmwareTargetKind = 'tenant' | 'site' | 'group' | 'device';

/** Which version a tenant, site, group or device runs, for one model or all (`model: null`). */
export interface FirmwareAssignment {
  tenantId: string;
  targetKind: FirmwareTargetKind;
  targetId: string;
  model: string | null;
  version: string;
  updatedAt: string;
}

export const ROLLOUT_STATES = ['canary', 'all', 'paused', 'aborted', 'done'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

/** A staged move of a target's devices to a version. */
export interface FirmwareRollout {
  id: string;
  tenantId: string;
  version: string;
  model: string | null;
  target: { kind: Exclude<FirmwareTargetKind, 'device'>; id: string };
  /** First stage: the devices of this group, or this share of the target (by MAC hash). */
  canary: { groupId: string } | { percent: number } | null;
  /** Devices move only inside this daily window (local time of `timeZone`); `null`: any time. */
  window: { start: string; end: string; timeZone: string } | null;
  state: RolloutState;
  /** The stage a paused rollout resumes into. */
  pausedFrom: 'canary' | 'all' | null;
  createdAt: string;
  updatedAt: string;
}
