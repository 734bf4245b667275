import type { Generated } from 'kysely';

/**
 * Table shapes as the database holds them. Portable on purpose: text ids, ISO-8601 text times and
 * JSON as text, so the PostgreSQL implementation can reuse every query unchanged.
 */
export interface TenantsTable {
  id: string;
  name: string;
  slug: string;
  prov_key: string;
  prov_username: string;
  prov_password: string;
  prov_prev_password: string | null;
  prov_prev_valid_until: string | null;
  settings: string;
  created_at: string;
  updated_at: string;
  deletion_requested_at: string | null;
  purge_after: string | null;
  subscription_ends_at: string | null;
}

export interface SitesTable {
  id: string;
  tenant_id: string;
  name: string;
  description: string;
  location: string;
  subnets: string;
  time_zone: string;
  sip: string;
  ntp: string;
  /** JSON of `SiteDhcp` (migration 0004). */
  dhcp: string;
  created_at: string;
  updated_at: string;
}

export interface GroupsTable {
  id: string;
  tenant_id: string;
  name: string;
  description: string;
  created_at: string;
  updated_at: string;
}

export interface DevicesTable {
  id: string;
  tenant_id: string;
  mac: string;
  model: string | null;
  name: string;
  site_id: string | null;
  labels: string;
  lines: string;
  params: string;
  state: string;
  last_seen_at: string | null;
  last_ip: string | null;
  last_user_agent: string | null;
  last_firmware: string | null;
  prov_username: string | null;
  prov_password: string | null;
  render_error: string | null;
  created_at: string;
  updated_at: string;
}

export interface RenderedFilesTable {
  tenant_id: string;
  device_id: string;
  name: string;
  body: string;
  etag: string;
  rendered_at: string;
}

export interface GroupMembersTable {
  tenant_id: string;
  device_id: string;
  group_id: string;
}

export interface ProfilesTable {
  id: string;
  tenant_id: string;
  name: string;
  description: string;
  params: string;
  created_at: string;
  updated_at: string;
}

export interface ProfileAssignmentsTable {
  tenant_id: string;
  target_kind: string;
  target_id: string;
  profile_id: string;
  position: number;
}

export interface UsersTable {
  id: string;
  tenant_id: string | null;
  email: string;
  name: string;
  role: string;
  password_hash: string | null;
  password_changed_at: string | null;
  disabled: number;
  created_at: string;
  updated_at: string;
}

export interface TokensTable {
  id: string;
  user_id: string;
  tenant_id: string | null;
  kind: string;
  name: string;
  token_hash: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface AuditEventsTable {
  seq: Generated<number>;
  at: string;
  tenant_id: string | null;
  actor_id: string | null;
  actor: string;
  ip: string | null;
  action: string;
  target: string;
  outcome: string;
  before: string | null;
  after: string | null;
}

export interface Database {
  tenants: TenantsTable;
  sites: SitesTable;
  device_groups: GroupsTable;
  devices: DevicesTable;
  group_members: GroupMembersTable;
  profiles: ProfilesTable;
  profile_assignments: ProfileAssignmentsTable;
  users: UsersTable;
  tokens: TokensTable;
  rendered_files: RenderedFilesTable;
  audit_events: AuditEventsTable;
  dhcp_leases: DhcpLeasesTable;
  account_links: AccountLinksTable;
  audit_redactions: { reason: string };
  firmware_images: FirmwareImagesTable;
  firmware_assignments: FirmwareAssignmentsTable;
  firmware_rollouts: FirmwareRolloutsTable;
}

export interface FirmwareImagesTable {
  version: string;
  part_number: string;
  models: string;
  sha256: string;
  size: number;
  file_name: string;
  created_at: string;
}

export interface FirmwareAssignmentsTable {
  tenant_id: string;
  target_kind: string;
  target_id: string;
  model: string;
  version: string;
  updated_at: string;
}

export interface FirmwareRolloutsTable {
  id: string;
  tenant_id: string;
  body: string;
  state: string;
  created_at: string;
  updated_at: string;
}

export interface AccountLinksTable {
  id: string;
  user_id: string;
  purpose: string;
  token_hash: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

export interface DhcpLeasesTable {
  site_id: string;
  tenant_id: string;
  ip: string;
  mac: string;
  state: string;
  expires_at: string;
  hostname: string | null;
  updated_at: string;
}
