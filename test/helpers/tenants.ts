import type { Role } from '../../src/domain/roles.ts';
import type { TestServer } from './app.ts';

let counter = 0;

/** A fresh tenant with one user of `role` (or the system admin's token), signed in. */
export async function tenantWithUser(
  s: TestServer,
  adminToken: string,
  role: Role,
): Promise<{ tenantId: string; token: string; userId: string | undefined }> {
  const n = ++counter;
  const t = await s.call('POST', '/api/v1/tenants', { token: adminToken, body: { name: `T${n}`, slug: `t-${n}-${role}` } });
  if (t.status !== 201) throw new Error(`tenant: ${t.status} ${JSON.stringify(t.body)}`);
  if (role === 'system-admin') return { tenantId: t.body.id, token: adminToken, userId: undefined };
  const email = `u${n}@${role}.test`;
  const password = 'a long test password';
  const u = await s.call('POST', `/api/v1/tenants/${t.body.id}/users`, { token: adminToken, body: { email, role, password } });
  if (u.status !== 201) throw new Error(`user: ${u.status} ${JSON.stringify(u.body)}`);
  const signIn = await s.call('POST', '/api/v1/auth/token', { body: { email, password } });
  return { tenantId: t.body.id, token: signIn.body.token, userId: u.body.id };
}

export interface Operation {
  method: string;
  path: string;
  operationId: string;
  permission: string;
  hasBody: boolean;
}

/** Every operation of the OpenAPI document. */
export async function operations(s: TestServer): Promise<Operation[]> {
  const doc = (await s.call('GET', '/api/v1/openapi.json')).body;
  const out: Operation[] = [];
  for (const [path, item] of Object.entries<Record<string, any>>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(item)) {
      out.push({ method: method.toUpperCase(), path, operationId: op.operationId, permission: op['x-edgeprov-permission'], hasBody: !!op.requestBody });
    }
  }
  return out;
}

export const fillPath = (path: string, values: Record<string, string>): string =>
  path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(values[name] ?? `missing-${name}`));
