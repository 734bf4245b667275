import { z } from '@hono/zod-openapi';
import { ROLES } from '../../domain/roles.ts';
import { DEVICE_STATES, DHCP_OPTION_TYPES, SIP_TRANSPORTS, type Device, type Page } from '../../domain/types.ts';

/** Response shapes of the admin API; the OpenAPI document is generated from these. */

const time = z.string().meta({ format: 'date-time' });

export const issueSchema = z.object({ path: z.string(), message: z.string() });

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ example: 'not_found' }),
      message: z.string(),
      requestId: z.string(),
      details: z.array(issueSchema).optional(),
    }),
  })
  .openapi('Error');

export const tenantView = z
  .object({
    id: z.string(),
    name: z.string(),
    slug: z.string(),
    provisioning: z.object({ key: z.string(), username: z.string() }),
    settings: z.object({ allowBasicOverHttp: z.boolean(), autoClaim: z.enum(['off', 'any', 'site-subnets']), tftp: z.boolean() }),
    profileIds: z.array(z.string()),
    createdAt: time,
    updatedAt: time,
  })
  .openapi('Tenant');

export const siteView = z
  .object({
    id: z.string(),
    tenantId: z.string(),
    name: z.string(),
    description: z.string(),
    location: z.string(),
    subnets: z.array(z.string()),
    timeZone: z.string(),
    sip: z.object({
      server: z.string().optional(),
      port: z.number().optional(),
      transport: z.enum(SIP_TRANSPORTS).optional(),
      outboundProxy: z.string().optional(),
    }),
    ntp: z.object({ server: z.string().optional() }),
    dhcp: z.object({
      enabled: z.boolean(),
      ranges: z.array(z.object({ start: z.string(), end: z.string() })),
      routers: z.array(z.string()),
      dnsServers: z.array(z.string()),
      ntpServers: z.array(z.string()),
      domainName: z.string().nullable(),
      leaseSeconds: z.number().int(),
      credentialsInUrl: z.boolean(),
      options: z.array(z.object({ code: z.number().int(), type: z.enum(DHCP_OPTION_TYPES), value: z.string() })),
      reservations: z.array(z.object({ mac: z.string(), ip: z.string() })),
    }),
    profileIds: z.array(z.string()),
    deviceCount: z.number().int(),
    createdAt: time,
    updatedAt: time,
  })
  .openapi('Site');

export const groupView = z
  .object({
    id: z.string(),
    tenantId: z.string(),
    name: z.string(),
    description: z.string(),
    profileIds: z.array(z.string()),
    deviceCount: z.number().int(),
    createdAt: time,
    updatedAt: time,
  })
  .openapi('Group');

const lineView = z.object({
  index: z.number().int(),
  address: z.string(),
  displayName: z.string().optional(),
  label: z.string().optional(),
  authUserId: z.string().optional(),
  /** Passwords are write-only; this says whether one is set. */
  authPasswordSet: z.boolean(),
  server: z.string().optional(),
  port: z.number().optional(),
  transport: z.enum(SIP_TRANSPORTS).optional(),
});

export const deviceView = z
  .object({
    id: z.string(),
    tenantId: z.string(),
    mac: z.string(),
    model: z.string().nullable(),
    name: z.string(),
    siteId: z.string().nullable(),
    groupIds: z.array(z.string()),
    labels: z.array(z.string()),
    lines: z.array(lineView),
    params: z.record(z.string(), z.string()),
    profileIds: z.array(z.string()),
    state: z.enum(DEVICE_STATES),
    lastSeen: z
      .object({ at: time, ip: z.string().nullable(), userAgent: z.string().nullable(), firmware: z.string().nullable() })
      .nullable(),
    /** Own provisioning username; its password is write-only. */
    credentials: z.object({ username: z.string() }).nullable(),
    renderError: z.object({ at: time, message: z.string(), problems: z.array(z.string()) }).nullable(),
    createdAt: time,
    updatedAt: time,
  })
  .openapi('Device');

export type DeviceView = z.infer<typeof deviceView>;

/** A device as the API shows it: SIP passwords never leave the server. */
export function toDeviceView(d: Device): DeviceView {
  return {
    ...d,
    credentials: d.credentials ? { username: d.credentials.username } : null,
    lines: d.lines.map(({ authPassword, ...l }) => ({ ...l, authPasswordSet: authPassword !== undefined && authPassword !== '' })),
  };
}

export const profileView = z
  .object({
    id: z.string(),
    tenantId: z.string(),
    name: z.string(),
    description: z.string(),
    params: z.record(z.string(), z.string()),
    createdAt: time,
    updatedAt: time,
  })
  .openapi('Profile');

export const userView = z
  .object({
    id: z.string(),
    tenantId: z.string().nullable(),
    email: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    disabled: z.boolean(),
    activated: z.boolean(),
    createdAt: time,
    updatedAt: time,
  })
  .openapi('User');

export const tokenView = z
  .object({
    id: z.string(),
    userId: z.string(),
    tenantId: z.string().nullable(),
    kind: z.enum(['session', 'api']),
    name: z.string(),
    createdAt: time,
    expiresAt: time.nullable(),
    lastUsedAt: time.nullable(),
    revokedAt: time.nullable(),
  })
  .openapi('Token');

export function pageOf<T extends z.ZodType>(item: T, name: string) {
  return z
    .object({ items: z.array(item), total: z.number().int(), limit: z.number().int(), offset: z.number().int() })
    .openapi(name);
}

export const mapPage = <A, B>(p: Page<A>, fn: (a: A) => B): Page<B> => ({ ...p, items: p.items.map(fn) });

export const dhcpLeaseView = z
  .object({
    ip: z.string(),
    mac: z.string(),
    /** `active`: bound and not yet expired. */
    state: z.enum(['active', 'expired', 'released', 'declined']),
    expiresAt: time,
    hostname: z.string().nullable(),
    updatedAt: time,
  })
  .openapi('DhcpLease');
