import type { Context } from 'hono';
import type { ServerResponse } from 'node:http';
import { Hono } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Clock } from '../../clock.ts';
import { FailureCounter } from '../../domain/throttle.ts';
import type { Logger } from '../../logger.ts';
import { macOf, parseName, safeRelativePath } from '../../provisioning/names.ts';
import type { ProvisioningTree, Requester } from '../../provisioning/tree.ts';
import type { TenantRow } from '../../store/store.ts';
import { clientIp, type HttpEnv } from './context.ts';
import type { Candidate, DeviceAuthenticator } from './device-auth.ts';

export interface DeviceRoutesDeps {
  tree: ProvisioningTree;
  auth: DeviceAuthenticator;
  clock: Clock;
  logger: Logger;
  /** Provisioning key of the tenant also served at `/` (single-tenant mode), if one is configured. */
  defaultTenantKey?: (() => Promise<string | undefined>) | undefined;
  /** Failed authentications per source address before it is refused for a while. @default 30 */
  maxAuthFailures?: number;
  authLockoutSeconds?: number;
}

const isEncrypted = (c: Context): boolean =>
  !!(c.env as { incoming?: { socket?: { encrypted?: boolean } } } | undefined)?.incoming?.socket?.encrypted;

/**
 * The phone-facing HTTP(S) adapter: `/p/<key>/<name>` (and `/<name>` in single-tenant mode) onto
 * the provisioning tree. Phones get plain status codes, never JSON.
 */
export function createDeviceRoutes(deps: DeviceRoutesDeps): Hono<HttpEnv> {
  const { tree, auth, logger, clock } = deps;
  const failures = new FailureCounter(deps.maxAuthFailures ?? 30, (deps.authLockoutSeconds ?? 300) * 1000);
  const app = new Hono<HttpEnv>();

  async function candidates(secrets: TenantRow, mac: string | null, username: string | undefined): Promise<Candidate[]> {
    const now = clock.now().toISOString();
    const list: Candidate[] = [{ username: secrets.provisioning.username, password: secrets.provisioningPassword, who: 'tenant' }];
    if (secrets.previousPassword && secrets.previousValidUntil && secrets.previousValidUntil > now) {
      list.push({ username: secrets.provisioning.username, password: secrets.previousPassword, who: 'tenant-previous' });
    }
    // A device's own credentials are looked up only when the phone presents another username.
    if (mac && username && username !== secrets.provisioning.username) {
      const own = await tree.deviceCredentials(secrets.id, mac);
      if (own) list.push({ ...own, who: 'device' });
    }
    return list;
  }

  async function handle(c: Context<HttpEnv>, key: string, rawRest: string): Promise<Response> {
    const method = c.req.method;
    if (method !== 'GET' && method !== 'HEAD' && method !== 'PUT') {
      return c.text('Method Not Allowed', 405, { Allow: 'GET, HEAD, PUT' });
    }
    const found = await tree.tenantByKey(key);
    if (!found) return c.text('Not Found', 404);
    const path = safeRelativePath(rawRest);
    if (!path) return c.text('Not Found', 404);

    const ip = clientIp(c);
    const now = clock.now().getTime();
    const blocked = failures.blockedFor(ip, now);
    if (blocked > 0) return c.text('Too Many Requests', 429, { 'Retry-After': String(Math.ceil(blocked / 1000)) });

    const secure = isEncrypted(c);
    const allowBasic = secure || found.tenant.settings.allowBasicOverHttp;
    const header = c.req.header('authorization');
    const ref = parseName(path);
    const mac = ref ? macOf(ref) : null;
    const url = c.req.url;
    const uri = url.slice(url.indexOf('/', url.indexOf('//') + 2));
    const presented = header ? /username="([^"]{0,100})"/.exec(header)?.[1] ?? basicUser(header) : undefined;
    const outcome = auth.verify(header, method, uri, await candidates(found.secrets, mac, presented), allowBasic);
    if (!outcome.ok) {
      if (header) {
        failures.fail(ip, now);
        // One line per failure, with the source address first-class (fail2ban-friendly).
        logger.warn({ event: 'provisioning_auth_failed', ip, tenant: found.tenant.slug, user: outcome.username?.slice(0, 64) ?? null, reason: outcome.reason, path: path.slice(0, 100) }, `provisioning auth failed from ${ip}`);
      }
      return unauthorized(c, auth.challenges({ basic: allowBasic, ...(outcome.stale && { stale: true }) }));
    }
    failures.clear(ip);

    const req: Requester = {
      tenant: found.tenant,
      ip,
      userAgent: c.req.header('user-agent'),
      protocol: secure ? 'https' : 'http',
      auth: outcome.who === 'device' && mac ? { kind: 'device', mac } : { kind: 'tenant' },
    };

    if (method === 'PUT') return put(c, req, path);

    const r = await tree.read(req, path);
    if (r.kind === 'not_found') return c.text('Not Found', 404);
    if (r.kind === 'unavailable') return c.text('Service Unavailable', 503, { 'Retry-After': String(r.retryAfterSeconds) });
    const headers: Record<string, string> = {
      ETag: r.etag,
      'Content-Type': r.contentType,
      'Cache-Control': 'no-cache',
    };
    const inm = c.req.header('if-none-match');
    if (inm && inm.split(',').some((t) => t.trim() === r.etag || t.trim() === '*')) return c.body(null, 304, headers);
    headers['Content-Length'] = String(r.body.length);
    if (method === 'HEAD') return c.body(null, 200, headers);
    return c.body(r.body as unknown as Uint8Array<ArrayBuffer>, 200, headers);
  }

  async function put(c: Context<HttpEnv>, req: Requester, path: string): Promise<Response> {
    const limit = tree.uploadLimit(path);
    if (!limit) return c.text('Method Not Allowed', 405, { Allow: 'GET, HEAD' });
    const declared = c.req.header('content-length');
    if (declared !== undefined && (!/^\d{1,12}$/.test(declared) || Number(declared) > limit.maxBytes)) {
      return c.text('Payload Too Large', 413);
    }
    const body = await readCapped(c.req.raw, limit.maxBytes);
    if (!body) return c.text('Payload Too Large', 413);
    const r = await tree.write(req, path, body);
    switch (r.kind) {
      case 'stored':
        return c.body(null, 204);
      case 'not_found':
        return c.text('Not Found', 404);
      case 'not_allowed':
        return c.text('Method Not Allowed', 405, { Allow: 'GET, HEAD' });
      case 'too_large':
        return c.text('Payload Too Large', 413);
      case 'bad':
        logger.info({ ip: req.ip, tenant: req.tenant.slug, path, reason: r.message }, 'upload refused');
        return c.text(`Bad Request: ${r.message}`, 400);
    }
  }

  const rest = (c: Context, prefixLength: number): string => {
    const url = c.req.url;
    const pathStart = url.indexOf('/', url.indexOf('//') + 2);
    const q = url.indexOf('?', pathStart);
    return url.slice(pathStart + prefixLength, q < 0 ? undefined : q);
  };

  app.all('/p/:key/*', (c) => {
    const key = c.req.param('key');
    return handle(c, key, rest(c, `/p/${key}/`.length));
  });
  const defaultKey = deps.defaultTenantKey;
  if (defaultKey) {
    app.all('/*', async (c, next) => {
      if (c.req.path.startsWith('/api/')) return next();
      const key = await defaultKey();
      return key ? handle(c, key, rest(c, 1)) : c.text('Not Found', 404);
    });
  }
  return app;
}

/**
 * A 401 with each challenge in its own WWW-Authenticate line. A Fetch Response would fold them
 * into one comma-joined header, which phone HTTP stacks do not parse; so this writes to Node's
 * response directly.
 */
function unauthorized(c: Context<HttpEnv>, challenges: string[]): Response {
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (!outgoing) {
    const res = c.text('Unauthorized', 401);
    for (const ch of challenges) res.headers.append('WWW-Authenticate', ch);
    return res;
  }
  const body = 'Unauthorized';
  outgoing.writeHead(401, {
    'Content-Type': 'text/plain; charset=UTF-8',
    'Content-Length': String(body.length),
    'WWW-Authenticate': challenges,
    'X-Request-Id': c.get('requestId'),
  });
  outgoing.end(body);
  c.set('sentStatus', 401);
  return RESPONSE_ALREADY_SENT;
}

function basicUser(header: string): string | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]{1,1024})$/i.exec(header);
  if (!m?.[1]) return undefined;
  const d = Buffer.from(m[1], 'base64').toString('utf8');
  const i = d.indexOf(':');
  return i < 0 ? undefined : d.slice(0, i);
}

/** The request body, or `undefined` once it passes `max` bytes (reading stops there). */
async function readCapped(req: Request, max: number): Promise<Buffer | undefined> {
  if (!req.body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks, size);
}
