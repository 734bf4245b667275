import { OpenAPIHono, createRoute, z, type RouteConfig } from '@hono/zod-openapi';
import type { Accounts } from '../../domain/accounts.ts';
import type { Inventory } from '../../domain/inventory.ts';
import { normalizeMacPrefix } from '../../domain/mac.ts';
import {
  deviceCreateSchema,
  deviceUpdateSchema,
  groupCreateSchema,
  groupUpdateSchema,
  profileCreateSchema,
  profileUpdateSchema,
  signInSchema,
  passwordChangeSchema,
  linkCompleteSchema,
  resetRequestSchema,
  siteCreateSchema,
  siteUpdateSchema,
  tenantCreateSchema,
  tenantUpdateSchema,
  tokenCreateSchema,
  userCreateSchema,
  userUpdateSchema,
  zodIssues,
} from '../../domain/schemas.ts';
import { DEVICE_STATES } from '../../domain/types.ts';
import { notXmlText, polycomXml } from '../../profiles/render.ts';
import { MAX_CSV_BYTES, csvHeader, csvRows, importDevicesCsv } from '../../domain/portability.ts';
import { AppError, invalid, notFound } from '../../errors.ts';
import { bodyLimit } from 'hono/body-limit';
import { DHCP_SERVERS, dhcpSnippet } from '../../provisioning/dhcp-snippets.ts';
import type { DhcpLeaseRepo } from '../../store/store.ts';
import type { Clock } from '../../clock.ts';
import type { ProvisioningTree } from '../../provisioning/tree.ts';
import type { UploadStore } from '../../provisioning/uploads.ts';
import type { Auditor } from '../../domain/audit.ts';
import type { Retention } from '../../domain/retention.ts';
import type { Firmware } from '../../firmware/service.ts';
import { Readable } from 'node:stream';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ROLLOUT_STATES } from '../../domain/types.ts';
import { auditTrail } from './audit.ts';
import { authenticate, authorize, visibleTenants, type Access } from './auth.ts';
import { clientIp, type HttpEnv } from './context.ts';
import {
  deviceView,
  errorSchema,
  groupView,
  mapPage,
  pageOf,
  profileView,
  siteView,
  dhcpLeaseView,
  tenantView,
  toDeviceView,
  tokenView,
  userView,
} from './views.ts';

export interface ProvisioningInfo {
  httpBase: string | null;
  httpsBase: string | null;
  username: string;
  password: string;
  previousPasswordValidUntil: string | null;
  caUrl: string | null;
  dhcp: { option160: string; option66: string; option160WithoutCredentials: string };
}

export interface AdminApiDeps {
  inventory: Inventory;
  accounts: Accounts;
  tree: ProvisioningTree;
  uploads: UploadStore;
  provisioningInfo: (tenantId: string) => Promise<ProvisioningInfo>;
  rotationGraceSeconds: number;
  auditor: Auditor;
  maxPageSize: number;
  maxBodyBytes: number;
  dhcpLeases: DhcpLeaseRepo;
  clock: Clock;
  retention: Retention;
  firmware: Firmware;
  /** Largest firmware .zip accepted. */
  firmwareMaxBundleBytes: number;
}

/** The OpenAPI extension naming the permission each operation needs; the RBAC test reads it. */
export const PERMISSION_EXTENSION = 'x-edgeprov-permission';

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});
const body = <T extends z.ZodType>(schema: T) => ({ required: true, content: { 'application/json': { schema } } });

const errors = {
  400: json(errorSchema, 'Malformed JSON or invalid fields'),
  401: json(errorSchema, 'No valid token'),
  403: json(errorSchema, 'The role does not allow this'),
  404: json(errorSchema, 'Unknown id (or another tenant’s)'),
  409: json(errorSchema, 'Conflicts with existing data'),
  413: json(errorSchema, 'Body too large'),
};

const pathId = (name: string) =>
  z
    .string()
    .min(1)
    .max(100)
    .openapi({ param: { name, in: 'path' } });

const tenantParams = z.object({ tenantId: pathId('tenantId') });
type PathId = ReturnType<typeof pathId>;
const itemParams = <K extends string>(name: K) =>
  z.object({ tenantId: pathId('tenantId'), [name]: pathId(name) } as { tenantId: PathId } & Record<K, PathId>);

export function createAdminApi(deps: AdminApiDeps): OpenAPIHono<HttpEnv> {
  const { inventory, accounts } = deps;
  const api = new OpenAPIHono<HttpEnv>({
    defaultHook: (result) => {
      if (!result.success) throw invalid(zodIssues(result.error));
    },
  });

  // Size is capped before anything parses the body; then the caller is identified.
  const limit = bodyLimit({
    maxSize: deps.maxBodyBytes,
    onError: () => {
      throw new AppError('payload_too_large', `request body is larger than ${deps.maxBodyBytes} bytes`);
    },
  });
  // Firmware uploads stream to disk under their own cap (firmware.maxImageBytes).
  const FIRMWARE_UPLOAD = /^\/api\/v1\/firmware\/[^/]+\/(images\/[^/]+|bundle)$/;
  api.use('*', (c, next) => (FIRMWARE_UPLOAD.test(c.req.path) && (c.req.method === 'PUT' || c.req.method === 'POST') ? next() : limit(c, next)));
  api.use('*', authenticate(accounts));
  api.use('*', auditTrail(api, deps.auditor));

  const pageQuery = z.object({
    limit: z.coerce.number().int().min(1).max(deps.maxPageSize).default(50),
    offset: z.coerce.number().int().min(0).default(0),
  });

  /** Every route goes through here: permission in the document and the gate in front. */
  function op<R extends RouteConfig>(access: Access, config: R) {
    return createRoute({
      ...config,
      [PERMISSION_EXTENSION]: access,
      security: access === 'public' ? [] : [{ bearerAuth: [] }],
      middleware: [authorize(access, inventory)],
      responses: { ...errors, ...config.responses },
    } as R);
  }

  api.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer' });

  // ---- auth ------------------------------------------------------------------------------------

  api.openapi(
    op('public', {
      method: 'post',
      path: '/auth/token',
      operationId: 'signIn',
      tags: ['auth'],
      summary: 'Exchange email and password for a bearer token',
      request: { body: body(signInSchema) },
      responses: {
        200: json(z.object({ token: z.string(), expiresAt: z.string(), user: userView }), 'Signed in'),
        429: json(errorSchema, 'Too many failed attempts'),
      },
    }),
    async (c) => {
      const { email, password } = c.req.valid('json');
      const r = await accounts.signIn(email, password, clientIp(c));
      return c.json(r, 200);
    },
  );

  api.openapi(
    op('authenticated', {
      method: 'delete',
      path: '/auth/token',
      operationId: 'signOut',
      tags: ['auth'],
      summary: 'Revoke the token used for this request',
      responses: { 204: { description: 'Signed out' } },
    }),
    async (c) => {
      await accounts.signOut(c.get('principal')!);
      return c.body(null, 204);
    },
  );

  api.openapi(
    op('authenticated', {
      method: 'get',
      path: '/me',
      operationId: 'getMe',
      tags: ['auth'],
      summary: 'The signed-in user',
      responses: { 200: json(userView, 'The caller') },
    }),
    async (c) => c.json(await accounts.me(c.get('principal')!), 200),
  );

  api.openapi(
    op('authenticated', {
      method: 'post',
      path: '/auth/password',
      operationId: 'changePassword',
      tags: ['auth'],
      summary: 'Change your own password; every session and token of yours ends, this one included',
      request: { body: body(passwordChangeSchema) },
      responses: { 204: { description: 'Changed' } },
    }),
    async (c) => {
      const b = c.req.valid('json');
      await accounts.changePassword(c.get('principal')!, b.currentPassword, b.newPassword, clientIp(c));
      return c.body(null, 204);
    },
  );

  const RESET_ANSWER = 'if this address belongs to an account, a reset link is on its way';
  api.openapi(
    op('public', {
      method: 'post',
      path: '/auth/password-reset',
      operationId: 'requestPasswordReset',
      tags: ['auth'],
      summary: 'Mail a password-reset link (the answer is the same whether the address is registered or not)',
      request: { body: body(resetRequestSchema) },
      responses: { 202: json(z.object({ message: z.string() }), 'Accepted'), 429: json(errorSchema, 'Too many requests') },
    }),
    async (c) => {
      await accounts.requestPasswordReset(c.req.valid('json').email, clientIp(c));
      return c.json({ message: RESET_ANSWER }, 202);
    },
  );
  for (const [purpose, path, operationId, summary] of [
    ['reset', '/auth/password-reset/complete', 'resetPassword', 'Set a new password with the token from a reset link; every session ends'],
    ['activate', '/auth/activate', 'activateAccount', 'Activate an invited account: choose the password with the token from the invitation'],
  ] as const) {
    api.openapi(
      op('public', {
        method: 'post',
        path,
        operationId,
        tags: ['auth'],
        summary,
        request: { body: body(linkCompleteSchema) },
        responses: { 200: json(z.object({ user: userView }), 'Password set; sign in with it') },
      }),
      async (c) => {
        const b = c.req.valid('json');
        return c.json({ user: await accounts.completeLink(b.token, purpose, b.password) }, 200);
      },
    );
  }

  // ---- tenants ---------------------------------------------------------------------------------

  api.openapi(
    op('tenant:read', {
      method: 'get',
      path: '/tenants',
      operationId: 'listTenants',
      tags: ['tenants'],
      summary: 'Tenants the caller can see (all of them for a system administrator)',
      request: { query: pageQuery },
      responses: { 200: json(pageOf(tenantView, 'TenantPage'), 'A page of tenants') },
    }),
    async (c) => c.json(await inventory.listTenants(c.req.valid('query'), visibleTenants(c.get('principal')!)), 200),
  );

  api.openapi(
    op('tenants:create', {
      method: 'post',
      path: '/tenants',
      operationId: 'createTenant',
      tags: ['tenants'],
      summary: 'Create a tenant with its provisioning key and credentials',
      request: { body: body(tenantCreateSchema) },
      responses: { 201: json(tenantView, 'Created') },
    }),
    async (c) => c.json(await inventory.createTenant(c.req.valid('json')), 201),
  );

  api.openapi(
    op('tenant:read', {
      method: 'get',
      path: '/tenants/{tenantId}',
      operationId: 'getTenant',
      tags: ['tenants'],
      request: { params: tenantParams },
      responses: { 200: json(tenantView, 'The tenant') },
    }),
    async (c) => c.json(await inventory.getTenant(c.req.valid('param').tenantId), 200),
  );

  api.openapi(
    op('tenant:update', {
      method: 'patch',
      path: '/tenants/{tenantId}',
      operationId: 'updateTenant',
      tags: ['tenants'],
      summary: 'Rename, change settings or the tenant-wide profiles',
      request: { params: tenantParams, body: body(tenantUpdateSchema) },
      responses: { 200: json(tenantView, 'Updated') },
    }),
    async (c) => c.json(await inventory.updateTenant(c.req.valid('param').tenantId, c.req.valid('json')), 200),
  );

  const deletionView = z.object({ tenant: tenantView });
  api.openapi(
    op('tenants:delete', {
      method: 'delete',
      path: '/tenants/{tenantId}',
      operationId: 'deleteTenant',
      tags: ['tenants'],
      summary: 'Mark a tenant for deletion: unreachable at once, purged with everything in it after the grace period',
      request: { params: tenantParams },
      responses: { 202: json(deletionView, 'Marked; see tenant.deletion.purgeAfter') },
    }),
    async (c) => c.json({ tenant: await deps.retention.markForDeletion(c.req.valid('param').tenantId) }, 202),
  );
  api.openapi(
    op('tenant:update', {
      method: 'post',
      path: '/tenants/{tenantId}/deletion',
      operationId: 'requestTenantDeletion',
      tags: ['tenants'],
      summary: 'A tenant administrator asks for their tenant to be deleted (as DELETE /tenants/{tenantId})',
      request: { params: tenantParams },
      responses: { 202: json(deletionView, 'Marked; see tenant.deletion.purgeAfter') },
    }),
    async (c) => c.json({ tenant: await deps.retention.markForDeletion(c.req.valid('param').tenantId) }, 202),
  );
  api.openapi(
    op('tenants:delete', {
      method: 'get',
      path: '/deleted-tenants',
      operationId: 'listDeletedTenants',
      tags: ['tenants'],
      summary: 'Tenants marked for deletion, with the time each will be purged',
      responses: { 200: json(z.object({ items: z.array(tenantView) }), 'Marked tenants, next purge first') },
    }),
    async (c) => c.json({ items: await deps.retention.listDeleted() }, 200),
  );
  api.openapi(
    op('tenants:delete', {
      method: 'post',
      path: '/deleted-tenants/{id}/restore',
      operationId: 'restoreTenant',
      tags: ['tenants'],
      summary: 'Take a tenant back before its purge',
      request: { params: z.object({ id: z.string().min(1).max(100) }) },
      responses: { 200: json(tenantView, 'Restored') },
    }),
    async (c) => c.json(await deps.retention.restore(c.req.valid('param').id), 200),
  );
  api.openapi(
    op('tenants:delete', {
      method: 'put',
      path: '/tenants/{tenantId}/subscription',
      operationId: 'setTenantSubscription',
      tags: ['tenants'],
      summary: 'When the subscription ends (null: open-ended); the tenant is purged a retention period later',
      request: { params: tenantParams, body: body(z.object({ endsAt: z.iso.datetime({ offset: true }).nullable() }).strict()) },
      responses: { 200: json(tenantView, 'Updated') },
    }),
    async (c) => {
      const { endsAt } = c.req.valid('json');
      return c.json(await deps.retention.setSubscriptionEnd(c.req.valid('param').tenantId, endsAt ? new Date(endsAt).toISOString() : null), 200);
    },
  );
  const anonymized = json(z.object({ values: z.number().int(), files: z.number().int() }), 'Replaced: how many distinct values, how many uploaded files rewritten');
  api.openapi(
    op('tenant:update', {
      method: 'post',
      path: '/tenants/{tenantId}/anonymize',
      operationId: 'anonymizeTenant',
      tags: ['tenants'],
      summary: "Irreversibly replace the tenant's personal data with random strings (confirm with its slug)",
      request: { params: tenantParams, body: body(z.object({ confirm: z.string().max(100) }).strict()) },
      responses: { 200: anonymized },
    }),
    async (c) => {
      const p = c.get('principal')!;
      const by = { actorId: p.userId, actor: p.email, ip: clientIp(c) || null };
      return c.json(await deps.retention.anonymizeTenant(c.req.valid('param').tenantId, c.req.valid('json').confirm, by), 200);
    },
  );

  // ---- sites -----------------------------------------------------------------------------------

  const siteParams = itemParams('siteId');
  api.openapi(
    op('sites:read', {
      method: 'get',
      path: '/tenants/{tenantId}/sites',
      operationId: 'listSites',
      tags: ['sites'],
      request: { params: tenantParams, query: pageQuery },
      responses: { 200: json(pageOf(siteView, 'SitePage'), 'A page of sites') },
    }),
    async (c) => c.json(await inventory.listSites(c.req.valid('param').tenantId, c.req.valid('query')), 200),
  );
  api.openapi(
    op('sites:write', {
      method: 'post',
      path: '/tenants/{tenantId}/sites',
      operationId: 'createSite',
      tags: ['sites'],
      request: { params: tenantParams, body: body(siteCreateSchema) },
      responses: { 201: json(siteView, 'Created') },
    }),
    async (c) => c.json(await inventory.createSite(c.req.valid('param').tenantId, c.req.valid('json')), 201),
  );
  api.openapi(
    op('sites:read', {
      method: 'get',
      path: '/tenants/{tenantId}/sites/{siteId}',
      operationId: 'getSite',
      tags: ['sites'],
      request: { params: siteParams },
      responses: { 200: json(siteView, 'The site') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      return c.json(await inventory.getSite(p.tenantId, p.siteId), 200);
    },
  );
  api.openapi(
    op('sites:write', {
      method: 'patch',
      path: '/tenants/{tenantId}/sites/{siteId}',
      operationId: 'updateSite',
      tags: ['sites'],
      request: { params: siteParams, body: body(siteUpdateSchema) },
      responses: { 200: json(siteView, 'Updated') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      return c.json(await inventory.updateSite(p.tenantId, p.siteId, c.req.valid('json')), 200);
    },
  );
  api.openapi(
    op('sites:write', {
      method: 'delete',
      path: '/tenants/{tenantId}/sites/{siteId}',
      operationId: 'deleteSite',
      tags: ['sites'],
      summary: 'Delete a site that has no devices',
      request: { params: siteParams },
      responses: { 204: { description: 'Deleted' } },
    }),
    async (c) => {
      const p = c.req.valid('param');
      await inventory.deleteSite(p.tenantId, p.siteId);
      return c.body(null, 204);
    },
  );

  api.openapi(
    op('provisioning:read', {
      method: 'get',
      path: '/tenants/{tenantId}/sites/{siteId}/dhcp',
      operationId: 'getSiteDhcpSnippet',
      tags: ['provisioning'],
      summary: 'Configuration for an existing DHCP server: option 160 and 66 with this site’s provisioning URL',
      request: {
        params: siteParams,
        query: z.object({
          server: z.enum(DHCP_SERVERS).default('isc'),
          polycomOnly: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
          /** Put the provisioning credentials into the URL. @default true */
          credentials: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
        }),
      },
      responses: { 200: { description: 'The snippet', content: { 'text/plain': { schema: z.string() } } } },
    }),
    async (c) => {
      const p = c.req.valid('param');
      const q = c.req.valid('query');
      const site = await inventory.getSite(p.tenantId, p.siteId);
      const tenant = await inventory.getTenant(p.tenantId);
      const info = await deps.provisioningInfo(p.tenantId);
      const url = q.credentials ? info.dhcp.option160 : info.dhcp.option160WithoutCredentials;
      return c.text(dhcpSnippet(q.server, { tenant, site, url, polycomOnly: q.polycomOnly }), 200);
    },
  );

  api.openapi(
    op('sites:read', {
      method: 'get',
      path: '/tenants/{tenantId}/sites/{siteId}/dhcp/leases',
      operationId: 'listSiteDhcpLeases',
      tags: ['sites'],
      summary: 'Addresses the built-in DHCP server handed out on this site (and those set aside)',
      request: { params: siteParams },
      responses: { 200: json(z.object({ items: z.array(dhcpLeaseView) }), 'The leases, by address') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      await inventory.getSite(p.tenantId, p.siteId);
      const now = deps.clock.now().toISOString();
      const rows = await deps.dhcpLeases.list(p.tenantId, p.siteId);
      const items = rows.map((l) => ({
        ip: l.ip,
        mac: l.mac,
        state: l.state === 'bound' ? (l.expiresAt > now ? ('active' as const) : ('expired' as const)) : l.state,
        expiresAt: l.expiresAt,
        hostname: l.hostname,
        updatedAt: l.updatedAt,
      }));
      return c.json({ items }, 200);
    },
  );

  // ---- groups ----------------------------------------------------------------------------------

  const groupParams = itemParams('groupId');
  api.openapi(
    op('groups:read', {
      method: 'get',
      path: '/tenants/{tenantId}/groups',
      operationId: 'listGroups',
      tags: ['groups'],
      request: { params: tenantParams, query: pageQuery },
      responses: { 200: json(pageOf(groupView, 'GroupPage'), 'A page of groups') },
    }),
    async (c) => c.json(await inventory.listGroups(c.req.valid('param').tenantId, c.req.valid('query')), 200),
  );
  api.openapi(
    op('groups:write', {
      method: 'post',
      path: '/tenants/{tenantId}/groups',
      operationId: 'createGroup',
      tags: ['groups'],
      request: { params: tenantParams, body: body(groupCreateSchema) },
      responses: { 201: json(groupView, 'Created') },
    }),
    async (c) => c.json(await inventory.createGroup(c.req.valid('param').tenantId, c.req.valid('json')), 201),
  );
  api.openapi(
    op('groups:read', {
      method: 'get',
      path: '/tenants/{tenantId}/groups/{groupId}',
      operationId: 'getGroup',
      tags: ['groups'],
      request: { params: groupParams },
      responses: { 200: json(groupView, 'The group') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      return c.json(await inventory.getGroup(p.tenantId, p.groupId), 200);
    },
  );
  api.openapi(
    op('groups:write', {
      method: 'patch',
      path: '/tenants/{tenantId}/groups/{groupId}',
      operationId: 'updateGroup',
      tags: ['groups'],
      request: { params: groupParams, body: body(groupUpdateSchema) },
      responses: { 200: json(groupView, 'Updated') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      return c.json(await inventory.updateGroup(p.tenantId, p.groupId, c.req.valid('json')), 200);
    },
  );
  api.openapi(
    op('groups:write', {
      method: 'delete',
      path: '/tenants/{tenantId}/groups/{groupId}',
      operationId: 'deleteGroup',
      tags: ['groups'],
      summary: 'Delete a group (its devices stay, without it)',
      request: { params: groupParams },
      responses: { 204: { description: 'Deleted' } },
    }),
    async (c) => {
      const p = c.req.valid('param');
      await inventory.deleteGroup(p.tenantId, p.groupId);
      return c.body(null, 204);
    },
  );

  // ---- devices ---------------------------------------------------------------------------------

  const deviceParams = itemParams('idOrMac');
  const deviceQuery = pageQuery.extend({
    siteId: z.string().max(100).optional(),
    groupId: z.string().max(100).optional(),
    model: z.string().max(100).optional(),
    state: z.enum(DEVICE_STATES).optional(),
    macPrefix: z
      .string()
      .max(17)
      .optional()
      .transform((v, ctx) => {
        if (v === undefined) return undefined;
        const p = normalizeMacPrefix(v);
        if (!p) ctx.addIssue({ code: 'custom', message: 'must be hex digits of a MAC, e.g. 00:04:f2' });
        return p;
      }),
    label: z.string().max(100).optional(),
    seenSince: z.iso.datetime({ offset: true }).optional().meta({ description: 'last seen at or after (ISO 8601)' }),
    seenBefore: z.iso.datetime({ offset: true }).optional().meta({ description: 'last seen before (ISO 8601)' }),
    neverSeen: z.enum(['true', 'false']).optional().transform((v) => v === 'true'),
  });

  api.openapi(
    op('devices:read', {
      method: 'get',
      path: '/tenants/{tenantId}/devices',
      operationId: 'listDevices',
      tags: ['devices'],
      summary: 'List devices, filtered by site, group, model, state, MAC prefix, label or last seen',
      request: { params: tenantParams, query: deviceQuery },
      responses: { 200: json(pageOf(deviceView, 'DevicePage'), 'A page of devices') },
    }),
    async (c) => {
      const { limit, offset, seenSince, seenBefore, ...filter } = c.req.valid('query');
      const norm = (s: string | undefined) => (s ? new Date(s).toISOString() : undefined);
      const page = await inventory.listDevices(
        c.req.valid('param').tenantId,
        Object.fromEntries(
          Object.entries({ ...filter, seenSince: norm(seenSince), seenBefore: norm(seenBefore) }).filter(([, v]) => v !== undefined && v !== false),
        ),
        { limit, offset },
      );
      return c.json(mapPage(page, toDeviceView), 200);
    },
  );
  api.openapi(
    op('devices:write', {
      method: 'post',
      path: '/tenants/{tenantId}/devices',
      operationId: 'createDevice',
      tags: ['devices'],
      request: { params: tenantParams, body: body(deviceCreateSchema) },
      responses: { 201: json(deviceView, 'Created') },
    }),
    async (c) => c.json(toDeviceView(await inventory.createDevice(c.req.valid('param').tenantId, c.req.valid('json'))), 201),
  );

  const bulkItem = z.union([
    z.object({ op: z.literal('create'), device: z.record(z.string(), z.unknown()) }).strict(),
    z.object({ op: z.literal('update'), idOrMac: z.string().min(1).max(100), device: z.record(z.string(), z.unknown()) }).strict(),
  ]);
  const bulkResult = z.object({
    dryRun: z.boolean(),
    applied: z.boolean(),
    results: z.array(
      z.object({
        index: z.number().int(),
        ok: z.boolean(),
        op: z.enum(['create', 'update']),
        id: z.string().optional(),
        mac: z.string().optional(),
        errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
      }),
    ),
  });
  api.openapi(
    op('devices:write', {
      method: 'post',
      path: '/tenants/{tenantId}/devices/bulk',
      operationId: 'bulkDevices',
      tags: ['devices'],
      summary: 'Create and update many devices: all or nothing; with dryRun, only a per-item report',
      request: {
        params: tenantParams,
        body: body(z.object({ dryRun: z.boolean().default(false), items: z.array(bulkItem).min(1).max(5000) }).strict()),
      },
      responses: {
        200: json(bulkResult, 'Applied, or the dry-run report'),
        422: json(bulkResult, 'At least one item failed; nothing was applied'),
      },
    }),
    async (c) => {
      const { dryRun, items } = c.req.valid('json');
      const r = await inventory.bulkDevices(c.req.valid('param').tenantId, items, dryRun);
      return r.dryRun || r.applied ? c.json(r, 200) : c.json(r, 422);
    },
  );

  api.openapi(
    op('devices:read', {
      method: 'get',
      path: '/tenants/{tenantId}/devices.csv',
      operationId: 'exportDevicesCsv',
      tags: ['devices'],
      summary: 'All devices as CSV, streamed; cells that a spreadsheet would run as formulas are neutralised',
      request: { params: tenantParams },
      responses: { 200: { description: 'CSV', content: { 'text/csv': { schema: z.string() } } } },
    }),
    async (c) => {
      const { tenantId } = c.req.valid('param');
      const sites = new Map((await inventory.listSites(tenantId, { limit: 100_000, offset: 0 })).items.map((x) => [x.id, x]));
      const groups = new Map((await inventory.listGroups(tenantId, { limit: 100_000, offset: 0 })).items.map((x) => [x.id, x]));
      let offset = 0;
      let headerSent = false;
      const enc = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        async pull(ctrl) {
          if (!headerSent) {
            headerSent = true;
            ctrl.enqueue(enc.encode(csvHeader()));
            return;
          }
          const page = await inventory.listDevices(tenantId, {}, { limit: 500, offset });
          offset += page.items.length;
          if (page.items.length) ctrl.enqueue(enc.encode(csvRows(page.items, sites, groups)));
          if (page.items.length < 500) ctrl.close();
        },
      });
      return c.body(body, 200, { 'Content-Type': 'text/csv; charset=utf-8', 'Content-Disposition': 'attachment; filename="devices.csv"' });
    },
  );
  const importReport = z.object({
    dryRun: z.boolean(),
    applied: z.boolean(),
    rows: z.array(z.object({ row: z.number().int(), mac: z.string().nullable(), op: z.enum(['create', 'update']).nullable(), ok: z.boolean(), errors: z.array(z.object({ path: z.string(), message: z.string() })) })),
  });
  api.openapi(
    op('devices:write', {
      method: 'post',
      path: '/tenants/{tenantId}/devices/import',
      operationId: 'importDevicesCsv',
      tags: ['devices'],
      summary: 'Create or update devices from CSV (columns as the export); every row reported; all or nothing',
      request: {
        params: tenantParams,
        query: z.object({ dryRun: z.enum(['true', 'false']).default('false').transform((v) => v === 'true') }),
        body: { required: true, content: { 'text/csv': { schema: z.string() } } },
      },
      responses: { 200: json(importReport, 'Applied, or the dry-run report'), 422: json(importReport, 'Some rows failed; nothing was applied') },
    }),
    async (c) => {
      if (!/^text\/(csv|plain)\b/i.test(c.req.header('content-type') ?? '')) throw new AppError('unsupported_media_type', 'send the file as text/csv');
      const text = await c.req.text();
      if (Buffer.byteLength(text) > MAX_CSV_BYTES) throw new AppError('payload_too_large', `a CSV import is at most ${MAX_CSV_BYTES} bytes`);
      const r = await importDevicesCsv(inventory, c.req.valid('param').tenantId, text, c.req.valid('query').dryRun);
      return r.dryRun || r.applied ? c.json(r, 200) : c.json(r, 422);
    },
  );

  api.openapi(
    op('devices:read', {
      method: 'get',
      path: '/tenants/{tenantId}/devices/{idOrMac}',
      operationId: 'getDevice',
      tags: ['devices'],
      summary: 'A device by id or by MAC (any accepted spelling)',
      request: { params: deviceParams },
      responses: { 200: json(deviceView, 'The device') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      return c.json(toDeviceView(await inventory.getDevice(p.tenantId, p.idOrMac)), 200);
    },
  );
  api.openapi(
    op('devices:write', {
      method: 'patch',
      path: '/tenants/{tenantId}/devices/{idOrMac}',
      operationId: 'updateDevice',
      tags: ['devices'],
      summary: 'Update a device; a line sent without authPassword keeps its password',
      request: { params: deviceParams, body: body(deviceUpdateSchema) },
      responses: { 200: json(deviceView, 'Updated') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      return c.json(toDeviceView(await inventory.updateDevice(p.tenantId, p.idOrMac, c.req.valid('json'))), 200);
    },
  );
  api.openapi(
    op('devices:write', {
      method: 'delete',
      path: '/tenants/{tenantId}/devices/{idOrMac}',
      operationId: 'deleteDevice',
      tags: ['devices'],
      request: { params: deviceParams },
      responses: { 204: { description: 'Deleted' } },
    }),
    async (c) => {
      const p = c.req.valid('param');
      await inventory.deleteDevice(p.tenantId, p.idOrMac);
      return c.body(null, 204);
    },
  );
  api.openapi(
    op('tenant:update', {
      method: 'post',
      path: '/tenants/{tenantId}/devices/{idOrMac}/anonymize',
      operationId: 'anonymizeDevice',
      tags: ['devices'],
      summary: "Irreversibly replace one device's personal data (names, SIP lines, addresses, uploaded files) with random strings",
      request: { params: deviceParams },
      responses: { 200: anonymized },
    }),
    async (c) => {
      const p = c.req.valid('param');
      const who = c.get('principal')!;
      return c.json(await deps.retention.anonymizeDevice(p.tenantId, p.idOrMac, { actorId: who.userId, actor: who.email, ip: clientIp(c) || null }), 200);
    },
  );

  api.openapi(
    op('provisioning:read', {
      method: 'get',
      path: '/tenants/{tenantId}/devices/{idOrMac}/preview',
      operationId: 'previewDevice',
      tags: ['devices'],
      summary: 'Every file the phone would receive now, rendered fresh (render errors listed, not thrown)',
      request: { params: deviceParams },
      responses: {
        200: json(
          z.object({
            files: z.array(z.object({ name: z.string(), contentType: z.string(), body: z.string() })),
            warnings: z.array(z.string()),
            errors: z.array(z.string()),
          }),
          'The files',
        ),
      },
    }),
    async (c) => {
      const p = c.req.valid('param');
      const device = await inventory.getDevice(p.tenantId, p.idOrMac);
      return c.json(await deps.tree.preview(await inventory.getTenant(p.tenantId), device), 200);
    },
  );
  const explainEntry = z.object({
    name: z.string(),
    value: z.string(),
    layer: z.enum(['defaults', 'tenant', 'site', 'group', 'device-profile', 'device']),
    source: z.string(),
    file: z.string(),
    overrides: z.array(z.object({ layer: z.string(), source: z.string(), value: z.string() })),
  });
  api.openapi(
    op('devices:read', {
      method: 'get',
      path: '/tenants/{tenantId}/devices/{idOrMac}/explain',
      operationId: 'explainDevice',
      tags: ['devices'],
      summary: 'Each parameter the phone gets, its value and the layer that set it (passwords masked)',
      request: { params: deviceParams },
      responses: { 200: json(z.object({ parameters: z.array(explainEntry) }), 'The parameters') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      const device = await inventory.getDevice(p.tenantId, p.idOrMac);
      const mask = (name: string, v: string) => (/password/i.test(name) ? '********' : v);
      const parameters = (await deps.tree.explain(await inventory.getTenant(p.tenantId), device)).map((e) => ({
        ...e,
        value: mask(e.name, e.value),
        overrides: e.overrides.map((o) => ({ ...o, value: mask(e.name, o.value) })),
      }));
      return c.json({ parameters }, 200);
    },
  );
  api.openapi(
    op('devices:read', {
      method: 'get',
      path: '/tenants/{tenantId}/devices/{idOrMac}/uploads',
      operationId: 'listDeviceUploads',
      tags: ['devices'],
      summary: 'Logs, overrides, contacts and call lists the phone uploaded',
      request: { params: deviceParams },
      responses: { 200: json(z.object({ items: z.array(z.object({ name: z.string(), size: z.number(), modifiedAt: z.string() })) }), 'The files') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      const device = await inventory.getDevice(p.tenantId, p.idOrMac);
      return c.json({ items: await deps.uploads.list(p.tenantId, device.mac) }, 200);
    },
  );
  api.openapi(
    op('devices:read', {
      method: 'get',
      path: '/tenants/{tenantId}/devices/{idOrMac}/uploads/{name}',
      operationId: 'getDeviceUpload',
      tags: ['devices'],
      summary: 'Download one uploaded file',
      request: { params: z.object({ tenantId: pathId('tenantId'), idOrMac: pathId('idOrMac'), name: pathId('name') }) },
      responses: { 200: { description: 'The file', content: { 'application/octet-stream': { schema: z.string() } } } },
    }),
    async (c) => {
      const p = c.req.valid('param');
      const device = await inventory.getDevice(p.tenantId, p.idOrMac);
      const body = await deps.uploads.read(p.tenantId, device.mac, p.name);
      if (!body) throw notFound('upload');
      const type = p.name.endsWith('.xml') || p.name.endsWith('.cfg') ? 'application/xml' : 'text/plain; charset=utf-8';
      return c.body(body as unknown as Uint8Array<ArrayBuffer>, 200, { 'Content-Type': type, 'Content-Disposition': `attachment; filename="${p.name}"` });
    },
  );

  // ---- provisioning ----------------------------------------------------------------------------

  const provisioningView = z
    .object({
      httpBase: z.string().nullable(),
      httpsBase: z.string().nullable(),
      username: z.string(),
      password: z.string(),
      previousPasswordValidUntil: z.string().nullable(),
      caUrl: z.string().nullable(),
      dhcp: z.object({ option160: z.string(), option66: z.string(), option160WithoutCredentials: z.string() }),
    })
    .openapi('Provisioning');
  api.openapi(
    op('provisioning:read', {
      method: 'get',
      path: '/tenants/{tenantId}/provisioning',
      operationId: 'getProvisioning',
      tags: ['provisioning'],
      summary: 'Where phones of this tenant provision: base URLs, credentials, DHCP option 160/66 values',
      request: { params: tenantParams },
      responses: { 200: json(provisioningView, 'Provisioning details') },
    }),
    async (c) => c.json(await deps.provisioningInfo(c.req.valid('param').tenantId), 200),
  );
  api.openapi(
    op('provisioning:rotate', {
      method: 'post',
      path: '/tenants/{tenantId}/provisioning/rotate',
      operationId: 'rotateProvisioningPassword',
      tags: ['provisioning'],
      summary: 'New provisioning password; the old one keeps working for the grace period',
      request: {
        params: tenantParams,
        body: body(z.object({ graceSeconds: z.number().int().min(0).max(90 * 86400).optional() }).strict()),
      },
      responses: { 200: json(provisioningView, 'The new details') },
    }),
    async (c) => {
      const { tenantId } = c.req.valid('param');
      await inventory.rotateProvisioningPassword(tenantId, c.req.valid('json').graceSeconds ?? deps.rotationGraceSeconds);
      return c.json(await deps.provisioningInfo(tenantId), 200);
    },
  );

  // ---- audit trail -----------------------------------------------------------------------------

  const auditView = z
    .object({
      seq: z.number().int(),
      at: z.string(),
      tenantId: z.string().nullable(),
      actorId: z.string().nullable(),
      actor: z.string(),
      ip: z.string().nullable(),
      action: z.string(),
      target: z.string(),
      outcome: z.enum(['success', 'failure']),
      before: z.unknown(),
      after: z.unknown(),
    })
    .openapi('AuditEvent');
  const auditQuery = pageQuery.extend({
    action: z.string().max(100).optional(),
    actor: z.string().max(254).optional(),
    since: z.iso.datetime({ offset: true }).optional(),
    until: z.iso.datetime({ offset: true }).optional(),
  });
  const auditFilter = (q: z.infer<typeof auditQuery>) => ({
    ...(q.action && { action: q.action }),
    ...(q.actor && { actor: q.actor }),
    ...(q.since && { since: new Date(q.since).toISOString() }),
    ...(q.until && { until: new Date(q.until).toISOString() }),
  });
  api.openapi(
    op('audit:read', {
      method: 'get',
      path: '/tenants/{tenantId}/audit',
      operationId: 'listTenantAudit',
      tags: ['audit'],
      summary: "The tenant's audit trail, newest first: every change and sign-in, secrets masked",
      request: { params: tenantParams, query: auditQuery },
      responses: { 200: json(pageOf(auditView, 'AuditPage'), 'A page of events') },
    }),
    async (c) => {
      const q = c.req.valid('query');
      return c.json(await deps.auditor.list(c.req.valid('param').tenantId, auditFilter(q), { limit: q.limit, offset: q.offset }), 200);
    },
  );
  api.openapi(
    op('audit:system', {
      method: 'get',
      path: '/audit',
      operationId: 'listSystemAudit',
      tags: ['audit'],
      summary: 'The system trail: tenants created and deleted, system administrators signing in, CLI actions',
      request: { query: auditQuery },
      responses: { 200: json(pageOf(auditView, 'SystemAuditPage'), 'A page of events') },
    }),
    async (c) => {
      const q = c.req.valid('query');
      return c.json(await deps.auditor.list(null, auditFilter(q), { limit: q.limit, offset: q.offset }), 200);
    },
  );

  // ---- profiles --------------------------------------------------------------------------------

  const profileParams = itemParams('profileId');
  api.openapi(
    op('profiles:read', {
      method: 'get',
      path: '/tenants/{tenantId}/profiles',
      operationId: 'listProfiles',
      tags: ['profiles'],
      request: { params: tenantParams, query: pageQuery },
      responses: { 200: json(pageOf(profileView, 'ProfilePage'), 'A page of profiles') },
    }),
    async (c) => c.json(await inventory.listProfiles(c.req.valid('param').tenantId, c.req.valid('query')), 200),
  );
  api.openapi(
    op('profiles:write', {
      method: 'post',
      path: '/tenants/{tenantId}/profiles',
      operationId: 'createProfile',
      tags: ['profiles'],
      summary: 'Create a named set of Polycom parameters',
      request: { params: tenantParams, body: body(profileCreateSchema) },
      responses: { 201: json(profileView, 'Created') },
    }),
    async (c) => c.json(await inventory.createProfile(c.req.valid('param').tenantId, c.req.valid('json')), 201),
  );
  api.openapi(
    op('profiles:read', {
      method: 'get',
      path: '/tenants/{tenantId}/profiles/{profileId}',
      operationId: 'getProfile',
      tags: ['profiles'],
      request: { params: profileParams },
      responses: { 200: json(profileView, 'The profile') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      return c.json(await inventory.getProfile(p.tenantId, p.profileId), 200);
    },
  );
  api.openapi(
    op('profiles:write', {
      method: 'patch',
      path: '/tenants/{tenantId}/profiles/{profileId}',
      operationId: 'updateProfile',
      tags: ['profiles'],
      request: { params: profileParams, body: body(profileUpdateSchema) },
      responses: { 200: json(profileView, 'Updated') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      return c.json(await inventory.updateProfile(p.tenantId, p.profileId, c.req.valid('json')), 200);
    },
  );
  api.openapi(
    op('profiles:write', {
      method: 'delete',
      path: '/tenants/{tenantId}/profiles/{profileId}',
      operationId: 'deleteProfile',
      tags: ['profiles'],
      summary: 'Delete a profile that is not assigned anywhere',
      request: { params: profileParams },
      responses: { 204: { description: 'Deleted' } },
    }),
    async (c) => {
      const p = c.req.valid('param');
      await inventory.deleteProfile(p.tenantId, p.profileId);
      return c.body(null, 204);
    },
  );

  api.openapi(
    op('profiles:read', {
      method: 'get',
      path: '/tenants/{tenantId}/profiles/{profileId}/export',
      operationId: 'exportProfile',
      tags: ['profiles'],
      summary: 'A profile as a JSON document (importable with POST /profiles) or as the Polycom XML it produces',
      request: { params: profileParams, query: z.object({ format: z.enum(['json', 'xml']).default('json') }) },
      responses: {
        200: {
          description: 'The profile',
          content: { 'application/json': { schema: profileCreateSchema }, 'application/xml': { schema: z.string() } },
        },
      },
    }),
    async (c) => {
      const p = c.req.valid('param');
      const profile = await inventory.getProfile(p.tenantId, p.profileId);
      const file = profile.name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80) || 'profile';
      if (c.req.valid('query').format === 'xml') {
        const unfit = Object.entries(profile.params).flatMap(([name, value]) => {
          const why = notXmlText(value);
          return why ? [{ path: `params.${name}`, message: why }] : [];
        });
        if (unfit.length) throw new AppError('validation_failed', 'the profile has values XML cannot carry', { details: unfit });
        return c.body(polycomXml(profile.params, `edgeprov profile "${profile.name}"`), 200, {
          'Content-Type': 'application/xml; charset=utf-8',
          'Content-Disposition': `attachment; filename="${file}.cfg"`,
        });
      }
      c.header('Content-Disposition', `attachment; filename="${file}.json"`);
      return c.json({ name: profile.name, description: profile.description, params: profile.params }, 200);
    },
  );

  // ---- firmware --------------------------------------------------------------------------------

  const fw = deps.firmware;
  const imageView = z
    .object({
      version: z.string(),
      partNumber: z.string().nullable(),
      models: z.array(z.string()),
      sha256: z.string(),
      size: z.number().int(),
      fileName: z.string(),
      createdAt: z.string(),
    })
    .openapi('FirmwareImage');
  const versionView = z.object({ version: z.string(), images: z.array(imageView) }).openapi('FirmwareVersion');
  const versionParams = z.object({ version: z.string().min(1).max(40) });
  /** The request body as a Node stream (never buffered whole). */
  const bodyStream = (c: { req: { raw: Request } }): Readable => {
    const b = c.req.raw.body;
    if (!b) return Readable.from([]);
    return Readable.fromWeb(b as import('node:stream/web').ReadableStream<Uint8Array>);
  };
  const declaredLength = (h: string | undefined): number | undefined => (h && /^\d{1,15}$/.test(h) ? Number(h) : undefined);

  api.openapi(
    op('firmware:read', {
      method: 'get',
      path: '/firmware',
      operationId: 'listFirmware',
      tags: ['firmware'],
      summary: 'Firmware versions in the catalogue with their images (part numbers, models, sha256, size)',
      responses: { 200: json(z.object({ items: z.array(versionView) }), 'Versions, newest first') },
    }),
    async (c) => c.json({ items: await fw.catalogue.versions() }, 200),
  );
  api.openapi(
    op('firmware:read', {
      method: 'get',
      path: '/firmware/{version}',
      operationId: 'getFirmwareVersion',
      tags: ['firmware'],
      request: { params: versionParams },
      responses: { 200: json(versionView, 'The version') },
    }),
    async (c) => c.json(await fw.catalogue.version(c.req.valid('param').version), 200),
  );
  api.openapi(
    op('firmware:write', {
      method: 'put',
      path: '/firmware/{version}/images/{fileName}',
      operationId: 'uploadFirmwareImage',
      tags: ['firmware'],
      summary: 'Add one image (`<part-number>.sip.ld` or `sip.ld`), streamed to disk; `models` for a part number the table lacks',
      request: {
        params: versionParams.extend({ fileName: z.string().min(1).max(100) }),
        query: z.object({ models: z.string().max(500).optional() }),
        body: { required: true, content: { 'application/octet-stream': { schema: z.string().meta({ format: 'binary' }) } } },
      },
      responses: { 201: json(imageView, 'Stored') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      const models = c.req.valid('query').models?.split(',').map((m) => m.trim()).filter(Boolean);
      const expected = declaredLength(c.req.header('content-length'));
      const image = await fw.catalogue.add(p.version, p.fileName, bodyStream(c), { ...(models && { models }), ...(expected !== undefined && { expectedBytes: expected }) });
      return c.json(image, 201);
    },
  );
  api.openapi(
    op('firmware:write', {
      method: 'post',
      path: '/firmware/{version}/bundle',
      operationId: 'uploadFirmwareBundle',
      tags: ['firmware'],
      summary: 'Add a whole UC release from a .zip of *.sip.ld images (part numbers from the names)',
      request: { params: versionParams, body: { required: true, content: { 'application/zip': { schema: z.string().meta({ format: 'binary' }) } } } },
      responses: { 201: json(versionView, 'Stored') },
    }),
    async (c) => {
      const version = c.req.valid('param').version;
      const dir = await mkdtemp(joinPath(tmpdir(), 'edgeprov-zip-'));
      try {
        const file = joinPath(dir, 'bundle.zip');
        let size = 0;
        const max = deps.firmwareMaxBundleBytes;
        await pipeline(
          bodyStream(c),
          async function* (src: AsyncIterable<Buffer>) {
            for await (const chunk of src) {
              size += chunk.length;
              if (size > max) throw new AppError('payload_too_large', `a bundle may be at most ${max} bytes; nothing was kept`);
              yield chunk;
            }
          },
          createWriteStream(file),
        );
        const images = await fw.catalogue.addZip(version, file);
        return c.json({ version, images }, 201);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
  api.openapi(
    op('firmware:write', {
      method: 'delete',
      path: '/firmware/{version}',
      operationId: 'deleteFirmwareVersion',
      tags: ['firmware'],
      summary: 'Remove a version and its images (refused while any tenant assigns or rolls it out)',
      request: { params: versionParams },
      responses: { 204: { description: 'Deleted' } },
    }),
    async (c) => {
      await fw.catalogue.remove(c.req.valid('param').version);
      return c.body(null, 204);
    },
  );

  const targetKind = z.enum(['tenant', 'site', 'group', 'device']);
  const assignmentView = z
    .object({ tenantId: z.string(), targetKind, targetId: z.string(), model: z.string().nullable(), version: z.string(), updatedAt: z.string() })
    .openapi('FirmwareAssignment');
  api.openapi(
    op('devices:read', {
      method: 'get',
      path: '/tenants/{tenantId}/firmware/assignments',
      operationId: 'listFirmwareAssignments',
      tags: ['firmware'],
      request: { params: tenantParams },
      responses: { 200: json(z.object({ items: z.array(assignmentView) }), 'Assignments') },
    }),
    async (c) => c.json({ items: fw.planner.listAssignments(c.req.valid('param').tenantId) }, 200),
  );
  api.openapi(
    op('devices:write', {
      method: 'put',
      path: '/tenants/{tenantId}/firmware/assignments',
      operationId: 'setFirmwareAssignment',
      tags: ['firmware'],
      summary: 'The version a tenant, site, group or device runs (per model, or every model); the most specific wins',
      request: {
        params: tenantParams,
        body: body(z.object({ targetKind, targetId: z.string().max(100).optional(), model: z.string().max(40).nullable().optional(), version: z.string().min(1).max(40) }).strict()),
      },
      responses: { 200: json(assignmentView, 'Set') },
    }),
    async (c) => c.json(await fw.planner.assign(c.req.valid('param').tenantId, c.req.valid('json')), 200),
  );
  api.openapi(
    op('devices:write', {
      method: 'delete',
      path: '/tenants/{tenantId}/firmware/assignments/{targetKind}/{targetId}',
      operationId: 'deleteFirmwareAssignment',
      tags: ['firmware'],
      request: { params: tenantParams.extend({ targetKind, targetId: z.string().min(1).max(100) }), query: z.object({ model: z.string().max(40).optional() }) },
      responses: { 204: { description: 'Removed' } },
    }),
    async (c) => {
      const p = c.req.valid('param');
      await fw.planner.unassign(p.tenantId, p.targetKind, p.targetId, c.req.valid('query').model ?? null);
      return c.body(null, 204);
    },
  );

  const rolloutView = z
    .object({
      id: z.string(),
      tenantId: z.string(),
      version: z.string(),
      model: z.string().nullable(),
      target: z.object({ kind: z.enum(['tenant', 'site', 'group']), id: z.string() }),
      canary: z.union([z.object({ groupId: z.string() }), z.object({ percent: z.number().int() })]).nullable(),
      window: z.object({ start: z.string(), end: z.string(), timeZone: z.string() }).nullable(),
      state: z.enum(ROLLOUT_STATES),
      pausedFrom: z.enum(['canary', 'all']).nullable(),
      createdAt: z.string(),
      updatedAt: z.string(),
    })
    .openapi('FirmwareRollout');
  const progressView = z.array(z.object({ model: z.string(), devices: z.number().int(), onTarget: z.number().int(), pointed: z.number().int() }));
  const rolloutParams = tenantParams.extend({ rolloutId: z.string().min(1).max(100) });
  api.openapi(
    op('devices:read', {
      method: 'get',
      path: '/tenants/{tenantId}/firmware/rollouts',
      operationId: 'listFirmwareRollouts',
      tags: ['firmware'],
      request: { params: tenantParams },
      responses: { 200: json(z.object({ items: z.array(rolloutView) }), 'Rollouts, oldest first') },
    }),
    async (c) => c.json({ items: fw.planner.listRollouts(c.req.valid('param').tenantId) }, 200),
  );
  api.openapi(
    op('devices:write', {
      method: 'post',
      path: '/tenants/{tenantId}/firmware/rollouts',
      operationId: 'startFirmwareRollout',
      tags: ['firmware'],
      summary: 'Move a target to a version: a canary group or share first, inside a daily window',
      request: {
        params: tenantParams,
        body: body(
          z
            .object({
              version: z.string().min(1).max(40),
              model: z.string().max(40).nullable().optional(),
              target: z.object({ kind: z.enum(['tenant', 'site', 'group']), id: z.string().max(100).optional() }).strict(),
              canary: z.union([z.object({ groupId: z.string().max(100) }).strict(), z.object({ percent: z.number().int().min(1).max(99) }).strict()]).nullable().optional(),
              window: z.object({ start: z.string().max(5), end: z.string().max(5), timeZone: z.string().max(100) }).strict().nullable().optional(),
            })
            .strict(),
        ),
      },
      responses: { 201: json(rolloutView, 'Started') },
    }),
    async (c) => c.json(await fw.planner.startRollout(c.req.valid('param').tenantId, c.req.valid('json')), 201),
  );
  api.openapi(
    op('devices:read', {
      method: 'get',
      path: '/tenants/{tenantId}/firmware/rollouts/{rolloutId}',
      operationId: 'getFirmwareRollout',
      tags: ['firmware'],
      summary: 'A rollout with its progress per model (devices, on the target version, pointed at it now)',
      request: { params: rolloutParams },
      responses: { 200: json(z.object({ rollout: rolloutView, inWindow: z.boolean(), progress: progressView }), 'The rollout') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      const rollout = fw.planner.rollout(p.tenantId, p.rolloutId);
      return c.json({ rollout, inWindow: fw.planner.inWindow(rollout), progress: await fw.planner.progress(p.tenantId, p.rolloutId) }, 200);
    },
  );
  for (const action of ['pause', 'resume', 'promote', 'abort', 'complete'] as const) {
    api.openapi(
      op('devices:write', {
        method: 'post',
        path: `/tenants/{tenantId}/firmware/rollouts/{rolloutId}/${action}`,
        operationId: `${action}FirmwareRollout`,
        tags: ['firmware'],
        summary: {
          pause: 'Stop moving devices (those already moved stay)',
          resume: 'Carry on from the stage it was paused in',
          promote: 'From the canary stage to every device of the target',
          abort: 'Stop and point every device back at its assignment',
          complete: 'Make the version the target’s assignment and end the rollout',
        }[action],
        request: { params: rolloutParams },
        responses: { 200: json(rolloutView, 'Changed') },
      }),
      async (c) => {
        const p = c.req.valid('param');
        return c.json(await fw.planner.transition(p.tenantId, p.rolloutId, action), 200);
      },
    );
  }

  // ---- users -----------------------------------------------------------------------------------

  const userParams = itemParams('userId');
  api.openapi(
    op('users:read', {
      method: 'get',
      path: '/tenants/{tenantId}/users',
      operationId: 'listUsers',
      tags: ['users'],
      request: { params: tenantParams, query: pageQuery },
      responses: { 200: json(pageOf(userView, 'UserPage'), 'A page of users') },
    }),
    async (c) => c.json(await accounts.listUsers(c.req.valid('param').tenantId, c.req.valid('query')), 200),
  );
  api.openapi(
    op('users:write', {
      method: 'post',
      path: '/tenants/{tenantId}/users',
      operationId: 'createUser',
      tags: ['users'],
      summary: 'Create a user of this tenant with a role: with a password, or invited by email to choose one',
      request: { params: tenantParams, body: body(userCreateSchema) },
      responses: { 201: json(userView, 'Created') },
    }),
    async (c) => c.json(await accounts.createUser(c.get('principal')!, c.req.valid('param').tenantId, c.req.valid('json')), 201),
  );
  api.openapi(
    op('users:write', {
      method: 'post',
      path: '/tenants/{tenantId}/users/{userId}/invitation',
      operationId: 'resendInvitation',
      tags: ['users'],
      summary: 'Mail a new activation link to a user who has not activated their account (older links stop working)',
      request: { params: userParams },
      responses: { 202: json(userView, 'Sent') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      return c.json(await accounts.resendInvitation(p.tenantId, p.userId), 202);
    },
  );
  api.openapi(
    op('users:read', {
      method: 'get',
      path: '/tenants/{tenantId}/users/{userId}',
      operationId: 'getUser',
      tags: ['users'],
      request: { params: userParams },
      responses: { 200: json(userView, 'The user') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      return c.json(await accounts.getUser(p.tenantId, p.userId), 200);
    },
  );
  api.openapi(
    op('users:write', {
      method: 'patch',
      path: '/tenants/{tenantId}/users/{userId}',
      operationId: 'updateUser',
      tags: ['users'],
      summary: 'Change name, role, disabled or password (a new password ends all their sessions)',
      request: { params: userParams, body: body(userUpdateSchema) },
      responses: { 200: json(userView, 'Updated') },
    }),
    async (c) => {
      const p = c.req.valid('param');
      return c.json(await accounts.updateUser(c.get('principal')!, p.tenantId, p.userId, c.req.valid('json')), 200);
    },
  );
  api.openapi(
    op('users:write', {
      method: 'delete',
      path: '/tenants/{tenantId}/users/{userId}',
      operationId: 'deleteUser',
      tags: ['users'],
      request: { params: userParams },
      responses: { 204: { description: 'Deleted' } },
    }),
    async (c) => {
      const p = c.req.valid('param');
      await accounts.deleteUser(c.get('principal')!, p.tenantId, p.userId);
      return c.body(null, 204);
    },
  );

  // ---- API tokens ------------------------------------------------------------------------------

  const tokenParams = itemParams('tokenId');
  api.openapi(
    op('tokens:own', {
      method: 'get',
      path: '/tenants/{tenantId}/tokens',
      operationId: 'listTokens',
      tags: ['tokens'],
      summary: 'API tokens: your own, or every one of the tenant for its administrators',
      request: { params: tenantParams },
      responses: { 200: json(z.object({ items: z.array(tokenView) }), 'Tokens (never their secrets)') },
    }),
    async (c) => c.json({ items: await accounts.listApiTokens(c.get('principal')!, c.req.valid('param').tenantId) }, 200),
  );
  api.openapi(
    op('tokens:own', {
      method: 'post',
      path: '/tenants/{tenantId}/tokens',
      operationId: 'createToken',
      tags: ['tokens'],
      summary: 'Create a long-lived API token limited to this tenant; the secret is shown only in this answer',
      request: { params: tenantParams, body: body(tokenCreateSchema) },
      responses: { 201: json(z.object({ token: z.string(), info: tokenView }), 'Created') },
    }),
    async (c) => c.json(await accounts.createApiToken(c.get('principal')!, c.req.valid('param').tenantId, c.req.valid('json')), 201),
  );
  api.openapi(
    op('tokens:own', {
      method: 'delete',
      path: '/tenants/{tenantId}/tokens/{tokenId}',
      operationId: 'revokeToken',
      tags: ['tokens'],
      request: { params: tokenParams },
      responses: { 204: { description: 'Revoked' } },
    }),
    async (c) => {
      const p = c.req.valid('param');
      await accounts.revokeApiToken(c.get('principal')!, p.tenantId, p.tokenId);
      return c.body(null, 204);
    },
  );

  api.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'edgeprov admin API',
      version: '1',
      description: 'Tenants, sites, groups, devices, profiles, users and tokens of an edgeprov provisioning server.',
    },
    servers: [{ url: '/api/v1' }],
  });

  return api;
}
