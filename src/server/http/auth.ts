import type { MiddlewareHandler } from 'hono';
import type { Accounts, Principal } from '../../domain/accounts.ts';
import type { Inventory } from '../../domain/inventory.ts';
import { can, type Permission, type Role } from '../../domain/roles.ts';
import { AppError, notFound } from '../../errors.ts';
import type { HttpEnv } from './context.ts';

/** What a route needs: no caller at all, any signed-in caller, or one permission. */
export type Access = 'public' | 'authenticated' | Permission;

/** Reads the bearer token, if any; routes decide with {@link authorize} whether one is needed. */
export function authenticate(accounts: Accounts): MiddlewareHandler<HttpEnv> {
  return async (c, next) => {
    c.set('principal', undefined);
    const header = c.req.header('authorization');
    if (header) {
      const m = header.match(/^Bearer\s+(\S+)$/i);
      const p = m?.[1] ? await accounts.authenticate(m[1]) : undefined;
      if (!p) throw new AppError('unauthorized', 'invalid or expired token');
      c.set('principal', p);
    }
    await next();
  };
}

/** A system administrator's token limited to one tenant acts as that tenant's administrator. */
export function effectiveRole(p: Principal): Role {
  return p.scopeTenantId && p.role === 'system-admin' ? 'tenant-admin' : p.role;
}

/** The tenants a caller may see at all; `undefined` means every tenant. */
export function visibleTenants(p: Principal): string[] | undefined {
  if (p.scopeTenantId) return [p.scopeTenantId];
  if (p.role === 'system-admin') return undefined;
  return p.tenantId ? [p.tenantId] : [];
}

/**
 * The one gate in front of every admin route. Order matters: a caller who cannot see the tenant
 * in the path gets 404 (never 403, which would confirm it exists), then the role is checked.
 */
export function authorize(access: Access, inventory: Inventory): MiddlewareHandler<HttpEnv> {
  return async (c, next) => {
    if (access === 'public') return next();
    const p = c.get('principal');
    if (!p) throw new AppError('unauthorized', 'sign in first: send Authorization: Bearer <token>');
    const tenantId = c.req.param('tenantId');
    if (tenantId !== undefined) {
      const visible = visibleTenants(p);
      if (visible && !visible.includes(tenantId)) throw notFound('tenant');
      if (!visible) await inventory.getTenant(tenantId);
    }
    if (access !== 'authenticated' && !can(effectiveRole(p), access)) {
      throw new AppError('forbidden', `role ${effectiveRole(p)} may not do this (needs ${access})`);
    }
    await next();
  };
}
