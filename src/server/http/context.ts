import type { Context } from 'hono';
import type { Principal } from '../../domain/accounts.ts';

/** What the HTTP layer keeps per request. */
export interface HttpEnv {
  Variables: {
    requestId: string;
    principal: Principal | undefined;
  };
}

/** The client's address as the socket saw it (no proxy headers are trusted). */
export function clientIp(c: Context): string {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  const ip = env?.incoming?.socket?.remoteAddress ?? '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
