import { z } from 'zod';
import { normalizeMac } from './mac.ts';
import { parseCidr } from './net.ts';
import { isIPv4 } from 'node:net';
import { DEVICE_STATES, DHCP_OPTION_TYPES, SIP_TRANSPORTS, type DhcpOptionType } from './types.ts';
import { ROLES } from './roles.ts';

/**
 * Input shapes shared by the admin API, the CLI and bulk import. Objects are strict: an unknown
 * field is an error, not silently dropped.
 */

const text = (max: number) => z.string().trim().max(max);
const name = z.string().trim().min(1, 'must not be empty').max(200);
const id = z.string().min(1).max(100);

export const macSchema = z
  .string()
  .transform((v, ctx) => {
    const mac = normalizeMac(v.trim());
    if (!mac) {
      ctx.addIssue({ code: 'custom', message: 'must be a MAC address like 00:04:f2:ab:cd:ef, 00-04-f2-ab-cd-ef or 0004f2abcdef' });
      return z.NEVER;
    }
    return mac;
  })
  .meta({ description: 'MAC address; stored as 12 lowercase hex digits', example: '0004f2abcdef' });

export const cidrSchema = z
  .string()
  .transform((v, ctx) => {
    const c = parseCidr(v);
    if (!c) {
      ctx.addIssue({ code: 'custom', message: `"${v.slice(0, 60)}" is not a valid CIDR (e.g. 10.20.0.0/16)` });
      return z.NEVER;
    }
    return c.text;
  })
  .meta({ example: '10.20.0.0/16' });

const hostName = z
  .string()
  .trim()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9.:\-[\]_]+$/, 'must be a host name or an IP address');

export const timeZoneSchema = z
  .string()
  .refine((tz) => {
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  }, 'must be an IANA time zone such as Europe/Berlin')
  .meta({ example: 'Europe/Berlin' });

export const sipSettingsSchema = z
  .object({
    server: hostName.optional(),
    port: z.number().int().min(1).max(65535).optional(),
    transport: z.enum(SIP_TRANSPORTS).optional(),
    outboundProxy: hostName.optional(),
  })
  .strict();

export const ntpSettingsSchema = z.object({ server: hostName.optional() }).strict();

/** Polycom parameter names (`reg.1.address`, `tcpIpApp.sntp.address` …). */
export const paramNameSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a Polycom parameter name such as reg.1.address');

export const paramsSchema = z
  .record(paramNameSchema, z.string().max(8192))
  .refine((r) => Object.keys(r).length <= 10000, 'at most 10000 parameters')
  .meta({ example: { 'tcpIpApp.sntp.address': 'pool.ntp.org', 'prov.polling.enabled': '1' } });

const profileIds = z.array(id).max(50).refine((a) => new Set(a).size === a.length, 'must not repeat a profile');

export const tenantSettingsSchema = z
  .object({
    allowBasicOverHttp: z.boolean().optional(),
    autoClaim: z.enum(['off', 'any', 'site-subnets']).optional(),
    tftp: z.boolean().optional(),
  })
  .strict();

export const slugSchema = z
  .string()
  .min(2)
  .max(63)
  .regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/, 'lowercase letters, digits and inner dashes only');

export const tenantCreateSchema = z
  .object({ name, slug: slugSchema.optional(), settings: tenantSettingsSchema.optional() })
  .strict();
export const tenantUpdateSchema = z
  .object({ name: name.optional(), slug: slugSchema.optional(), settings: tenantSettingsSchema.optional(), profileIds: profileIds.optional() })
  .strict();

const ipv4 = z.string().trim().refine((v) => isIPv4(v), 'must be an IPv4 address such as 10.20.0.1');

/** Why a value does not fit a DHCP option type, or `undefined` when it does. */
export function dhcpOptionProblem(type: DhcpOptionType, value: string): string | undefined {
  const int = (max: number) => (/^\d{1,10}$/.test(value) && Number(value) <= max ? undefined : `must be a whole number from 0 to ${max}`);
  switch (type) {
    case 'text':
      return /^[\x20-\x7e]{0,1000}$/.test(value) ? undefined : 'must be printable ASCII, at most 1000 characters';
    case 'ip':
      return isIPv4(value) ? undefined : 'must be an IPv4 address';
    case 'ips': {
      const list = value.split(',').map((v) => v.trim());
      return list.length <= 60 && list.every((v) => isIPv4(v)) ? undefined : 'must be IPv4 addresses separated by commas';
    }
    case 'uint8':
      return int(255);
    case 'uint16':
      return int(65535);
    case 'uint32':
      return int(4294967295);
    case 'bool':
      return ['true', 'false', '0', '1'].includes(value) ? undefined : 'must be true, false, 1 or 0';
    case 'hex': {
      const hex = value.replace(/[:\s]/g, '');
      return /^([0-9a-fA-F]{2}){0,1000}$/.test(hex) ? undefined : 'must be pairs of hex digits (colons allowed)';
    }
  }
}

/** Codes the DHCP server itself owns: the message machinery, lease times, identifiers. */
export const RESERVED_DHCP_CODES = new Set([0, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 61, 255]);

export const siteDhcpSchema = z
  .object({
    enabled: z.boolean().optional(),
    ranges: z.array(z.object({ start: ipv4, end: ipv4 }).strict()).max(32).optional(),
    routers: z.array(ipv4).max(8).optional(),
    dnsServers: z.array(ipv4).max(8).optional(),
    ntpServers: z.array(ipv4).max(8).optional(),
    domainName: hostName.nullable().optional(),
    leaseSeconds: z.number().int().min(60).max(365 * 86400).optional(),
    credentialsInUrl: z.boolean().optional(),
    options: z
      .array(
        z
          .object({ code: z.number().int().min(1).max(254), type: z.enum(DHCP_OPTION_TYPES), value: z.string().max(2000) })
          .strict()
          .superRefine((o, ctx) => {
            if (RESERVED_DHCP_CODES.has(o.code)) ctx.addIssue({ code: 'custom', path: ['code'], message: `option ${o.code} is set by the server itself` });
            const problem = dhcpOptionProblem(o.type, o.value);
            if (problem) ctx.addIssue({ code: 'custom', path: ['value'], message: problem });
          }),
      )
      .max(64)
      .refine((a) => new Set(a.map((o) => o.code)).size === a.length, 'must not repeat an option code')
      .optional(),
    reservations: z
      .array(z.object({ mac: macSchema, ip: ipv4 }).strict())
      .max(10000)
      .refine((a) => new Set(a.map((r) => r.mac)).size === a.length, 'must not repeat a MAC')
      .refine((a) => new Set(a.map((r) => r.ip)).size === a.length, 'must not repeat an address')
      .optional(),
  })
  .strict();

export const siteCreateSchema = z
  .object({
    name,
    description: text(2000).optional(),
    location: text(500).optional(),
    subnets: z.array(cidrSchema).max(100).optional(),
    timeZone: timeZoneSchema.optional(),
    sip: sipSettingsSchema.optional(),
    ntp: ntpSettingsSchema.optional(),
    dhcp: siteDhcpSchema.optional(),
    profileIds: profileIds.optional(),
  })
  .strict();
export const siteUpdateSchema = siteCreateSchema.partial().strict();

export const groupCreateSchema = z
  .object({ name, description: text(2000).optional(), profileIds: profileIds.optional() })
  .strict();
export const groupUpdateSchema = groupCreateSchema.partial().strict();

export const sipLineSchema = z
  .object({
    index: z.number().int().min(1).max(48),
    address: z.string().trim().min(1).max(200),
    displayName: text(200).optional(),
    label: text(200).optional(),
    authUserId: text(200).optional(),
    authPassword: z.string().max(200).optional(),
    server: hostName.optional(),
    port: z.number().int().min(1).max(65535).optional(),
    transport: z.enum(SIP_TRANSPORTS).optional(),
  })
  .strict();

const lines = z
  .array(sipLineSchema)
  .max(48)
  .refine((ls) => new Set(ls.map((l) => l.index)).size === ls.length, 'line indexes must be unique');

const label = z.string().trim().min(1).max(100).regex(/^[^\s,]+$/, 'no spaces or commas');

export const deviceCreateSchema = z
  .object({
    mac: macSchema,
    model: z.string().trim().min(1).max(100).nullable().optional(),
    name: text(200).optional(),
    siteId: id.nullable().optional(),
    groupIds: z.array(id).max(100).optional(),
    labels: z.array(label).max(100).optional(),
    lines: lines.optional(),
    params: paramsSchema.optional(),
    profileIds: profileIds.optional(),
    state: z.enum(DEVICE_STATES).optional(),
    /** Own provisioning credentials for this phone (`null` removes them). */
    credentials: z
      .object({
        username: z.string().min(1).max(64).regex(/^[A-Za-z0-9._@-]+$/, 'letters, digits and . _ @ - only'),
        password: z.string().min(12, 'must be at least 12 characters').max(128).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces'),
      })
      .strict()
      .nullable()
      .optional(),
  })
  .strict();
export const deviceUpdateSchema = deviceCreateSchema.partial().strict();

export const profileCreateSchema = z
  .object({ name, description: text(2000).optional(), params: paramsSchema.optional() })
  .strict();
export const profileUpdateSchema = profileCreateSchema.partial().strict();

const email = z
  .string()
  .trim()
  .max(254)
  .regex(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, 'must be an email address')
  .transform((e) => e.toLowerCase());

export const userCreateSchema = z
  .object({
    email,
    name: text(200).optional(),
    role: z.enum(ROLES),
    /** Omitted: the user is invited by email and chooses it. */
    password: z.string().min(1).max(256).optional(),
  })
  .strict();
export const userUpdateSchema = z
  .object({ name: text(200).optional(), role: z.enum(ROLES).optional(), disabled: z.boolean().optional(), password: z.string().min(1).max(256).optional() })
  .strict();

export const passwordChangeSchema = z.object({ currentPassword: z.string().min(1).max(256), newPassword: z.string().min(1).max(256) }).strict();
export const linkCompleteSchema = z.object({ token: z.string().min(1).max(100), password: z.string().min(1).max(256) }).strict();
export const resetRequestSchema = z.object({ email }).strict();

export const signInSchema = z.object({ email, password: z.string().min(1).max(256) }).strict();

export const tokenCreateSchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    /** Days until it expires; omitted: never. */
    expiresInDays: z.number().int().min(1).max(3650).optional(),
  })
  .strict();

export type TenantCreate = z.output<typeof tenantCreateSchema>;
export type TenantUpdate = z.output<typeof tenantUpdateSchema>;
export type SiteCreate = z.output<typeof siteCreateSchema>;
export type SiteUpdate = z.output<typeof siteUpdateSchema>;
export type GroupCreate = z.output<typeof groupCreateSchema>;
export type GroupUpdate = z.output<typeof groupUpdateSchema>;
export type DeviceCreate = z.output<typeof deviceCreateSchema>;
export type DeviceUpdate = z.output<typeof deviceUpdateSchema>;
export type ProfileCreate = z.output<typeof profileCreateSchema>;
export type ProfileUpdate = z.output<typeof profileUpdateSchema>;
export type UserCreate = z.output<typeof userCreateSchema>;
export type UserUpdate = z.output<typeof userUpdateSchema>;
export type TokenCreate = z.output<typeof tokenCreateSchema>;

/** zod issues in the one shape the API reports them. */
export function zodIssues(err: z.ZodError, prefix = ''): Array<{ path: string; message: string }> {
  return err.issues.map((i) => ({
    path: [prefix, ...i.path.map(String)].filter(Boolean).join('.'),
    message: i.message,
  }));
}
