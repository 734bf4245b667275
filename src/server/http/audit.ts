import type { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import type { Auditor } from '../../domain/audit.ts';
import { clientIp, type HttpEnv } from './context.ts';

interface Op {
  method: string;
  re: RegExp;
  operationId: string;
}

/**
 * Records every change made through the admin API (and every sign-in, success or failure) in the
 * audit trail: who, tenant, what, when, from which address, and the state before and after. The
 * "before" is read through the API itself, with the caller's own credentials, so it shows exactly
 * what that caller could see.
 */
export function auditTrail(api: OpenAPIHono<HttpEnv>, auditor: Auditor): MiddlewareHandler<HttpEnv> {
  let ops: Op[] | undefined;
  const opsOf = (): Op[] =>
    (ops ??= api.openAPIRegistry.definitions
      .filter((d): d is Extract<typeof d, { type: 'route' }> => d.type === 'route')
      .map((d) => ({
        method: d.route.method.toUpperCase(),
        re: new RegExp(`^${d.route.path.replace(/\{\w+\}/g, '[^/]+')}$`),
        operationId: d.route.operationId ?? `${d.route.method} ${d.route.path}`,
      })));

  return async (c, next) => {
    const method = c.req.method;
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return next();
    const rel = c.req.path.replace(/^\/api\/v1/, '');
    const authorization = c.req.header('authorization');
    let before: unknown = null;
    if ((method === 'PATCH' || method === 'DELETE') && authorization && c.get('principal') && /^\/tenants\//.test(rel)) {
      const r = await api.request(rel, { headers: { authorization } });
      if (r.ok) before = await r.json().catch(() => null);
    }
    await next();
    const status = c.res.status;
    const action = opsOf().find((o) => o.method === method && o.re.test(rel))?.operationId ?? `${method} ${rel}`;
    const p = c.get('principal');
    const ip = clientIp(c) || null;
    if (action === 'signIn') {
      const body = (await c.req.json().catch(() => ({}))) as { email?: unknown };
      const email = typeof body.email === 'string' ? body.email.toLowerCase().slice(0, 254) : '';
      const ok = status === 200;
      const after = ok ? ((await c.res.clone().json().catch(() => null)) as { user?: { id?: string; tenantId?: string | null } } | null) : null;
      await auditor.record({
        tenantId: after?.user?.tenantId ?? null,
        actorId: after?.user?.id ?? null,
        actor: email,
        ip,
        action: ok ? 'signIn' : 'signInFailed',
        target: '/auth/token',
        outcome: ok ? 'success' : 'failure',
        after: ok ? null : { status },
      });
      return;
    }
    if (action === 'activateAccount' || action === 'resetPassword' || action === 'requestPasswordReset') {
      // Nobody is signed in: the actor is the account the link (or the request) is for.
      const ok = status < 300;
      const body = ok ? ((await c.res.clone().json().catch(() => null)) as { user?: { id?: string; tenantId?: string | null; email?: string } } | null) : null;
      const asked = action === 'requestPasswordReset' ? ((await c.req.json().catch(() => ({}))) as { email?: unknown }).email : undefined;
      await auditor.record({
        tenantId: body?.user?.tenantId ?? null,
        actorId: body?.user?.id ?? null,
        actor: body?.user?.email ?? (typeof asked === 'string' ? asked.toLowerCase().slice(0, 254) : 'anonymous'),
        ip,
        action,
        target: rel,
        outcome: ok ? 'success' : 'failure',
        after: ok ? null : { status },
      });
      return;
    }
    if (status >= 300) return;
    // These write their own entry, free of the personal data they just removed.
    if (action === 'anonymizeTenant' || action === 'anonymizeDevice') return;
    let after: unknown = null;
    if (status !== 204 && (c.res.headers.get('content-type') ?? '').includes('json')) after = await c.res.clone().json().catch(() => null);
    const tenantId =
      /^\/tenants\/([^/]+)/.exec(rel)?.[1] ?? (action === 'createTenant' ? ((after as { id?: string } | null)?.id ?? null) : null);
    await auditor.record({
      // Creating or deleting a tenant is a system event; everything under a tenant is the tenant's.
      tenantId: action === 'createTenant' || action === 'deleteTenant' || action === 'requestTenantDeletion' ? null : tenantId,
      actorId: p?.userId ?? null,
      actor: p?.email ?? 'anonymous',
      ip,
      action,
      target: rel,
      outcome: 'success',
      before,
      after,
    });
  };
}
