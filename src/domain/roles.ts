/**
 * Roles and what they may do: the one table every admin route is checked against.
 * The README's role table is a copy of this one; a test keeps both in step.
 */
export const ROLES = ['system-admin', 'tenant-admin', 'device-admin', 'device-operator'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = [
  'tenants:create',
  'tenants:delete',
  'tenant:read',
  'tenant:update',
  'sites:read',
  'sites:write',
  'groups:read',
  'groups:write',
  'devices:read',
  'devices:write',
  'profiles:read',
  'profiles:write',
  'provisioning:read',
  'provisioning:rotate',
  'users:read',
  'users:write',
  'tokens:own',
  'audit:read',
  'audit:system',
  'firmware:read',
  'firmware:write',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const READ_DEVICES: Permission[] = ['tenant:read', 'sites:read', 'groups:read', 'devices:read', 'profiles:read', 'tokens:own', 'firmware:read'];
const WRITE_DEVICES: Permission[] = ['sites:write', 'groups:write', 'devices:write', 'profiles:write', 'provisioning:read'];

export const ROLE_PERMISSIONS: Readonly<Record<Role, ReadonlySet<Permission>>> = {
  'system-admin': new Set(PERMISSIONS),
  'tenant-admin': new Set([...READ_DEVICES, ...WRITE_DEVICES, 'tenant:update', 'provisioning:rotate', 'users:read', 'users:write', 'audit:read']),
  'device-admin': new Set([...READ_DEVICES, ...WRITE_DEVICES]),
  'device-operator': new Set(READ_DEVICES),
};

export const can = (role: Role, permission: Permission): boolean => ROLE_PERMISSIONS[role].has(permission);

/** Whether `actor` may hand out `target` (nobody grants a role above their own). */
export function canGrant(actor: Role, target: Role): boolean {
  if (actor === 'system-admin') return true;
  if (actor === 'tenant-admin') return target !== 'system-admin';
  return false;
}
