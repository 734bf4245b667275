import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Clock } from '../../clock.ts';
import { FailureCounter } from '../../domain/throttle.ts';
import { requestLogger, type Logger } from '../../logger.ts';
import { macOf, parseName, safeRelativePath } from '../../provisioning/names.ts';
import type { ProvisioningTree, ReadResult, Requester } from '../../provisioning/tree.ts';
import type { TenantRow } from '../../store/store.ts';
import type { Tenant } from '../../domain/types.ts';
import type { FileRef } from '../../provisioning/names.ts';
import { basicCredentials, type Candidate, type DeviceAuthenticator } from './device-auth.ts';
import type { TransferLimiter } from '../../firmware/limits.ts';
import { serveBlob } from './ranges.ts';

export interface DeviceRoutesDeps {
  tree: ProvisioningTree;
  auth: DeviceAuthenticator;
  clock: Clock;
  logger: Logger;
  /** Access lines (no redaction); `logger` when omitted. */
  accessLogger?: Logger | undefined;
  /** Provisioning key of the tenant also served at `/` (single-tenant mode), if one is configured. */
  defaultTenantKey?: (() => Promise<string | undefined>) | undefined;
  /** Caps on concurrent firmware downloads. */
  firmwareLimiter?: TransferLimiter | undefined;
  /** Failed authentications per source address before it is refused for a while. @default 30 */
  maxAuthFailures?: number;
  authLockoutSeconds?: number;
}

/** Answers a phone's request, or returns false when the path is not the phones' (the admin app takes it). */
export type DeviceHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/** Paths the admin side owns even in single-tenant mode. */
const ADMIN_PREFIXES = ['/api/', '/healthz', '/readyz'];

/**
 * The phone-facing HTTP(S) adapter: `/p/<key>/<name>` (and `/<name>` in single-tenant mode) onto
 * the provisioning tree. It speaks Node's HTTP directly: this is the hot path of a boot storm,
 * and phones get plain status codes, never JSON. Every request target is taken exactly as sent.
 */
export function createDeviceHandler(deps: DeviceRoutesDeps): DeviceHandler {
  const { tree, auth, logger, clock } = deps;
  const access = deps.accessLogger ?? logger;
  const requestLine = requestLogger(access);
  const failures = new FailureCounter(deps.maxAuthFailures ?? 30, (deps.authLockoutSeconds ?? 300) * 1000);

  /** Who may sign in: the tenant's account (and its previous password in the grace period). */
  function tenantCandidates(secrets: TenantRow): Candidate[] {
    const list: Candidate[] = [{ username: secrets.provisioning.username, password: secrets.provisioningPassword, who: 'tenant' }];
    if (secrets.previousPassword && secrets.previousValidUntil && secrets.previousValidUntil > clock.now().toISOString()) {
      list.push({ username: secrets.provisioning.username, password: secrets.previousPassword, who: 'tenant-previous' });
    }
    return list;
  }

  /**
   * Every answer but a firmware stream. The request id travels in the same header object: one set
   * before `writeHead` would send Node down its slower path, which checks each header again.
   */
  function send(res: ServerResponse, status: number, headers: Record<string, string | string[]>, body?: Buffer | string): void {
    const b = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
    if (b !== undefined && headers['Content-Length'] === undefined) headers['Content-Length'] = String(b.length);
    const id = requestIds.get(res);
    if (id !== undefined) headers['X-Request-Id'] = id;
    res.writeHead(status, headers);
    res.end(b);
  }
  const requestIds = new WeakMap<ServerResponse, string>();

  const text = (res: ServerResponse, status: number, msg: string, extra: Record<string, string | string[]> = {}) =>
    send(res, status, { 'Content-Type': 'text/plain; charset=UTF-8', ...extra }, msg);

  /** Names below a base, resolved once: phones ask for the same few names again and again. */
  const names = new Map<string, { path: string; ref: FileRef | undefined } | null>();
  function resolve(rawRest: string): { path: string; ref: FileRef | undefined } | null {
    let hit = names.get(rawRest);
    if (hit === undefined) {
      const path = safeRelativePath(rawRest);
      hit = path ? { path, ref: parseName(path) } : null;
      if (names.size >= 50_000) names.clear();
      names.set(rawRest, hit);
    }
    return hit;
  }

  /**
   * One phone request. Synchronous for as long as everything it needs is in memory (the cached
   * tenant, its credentials, the rendered file): a boot storm's requests never wait on a promise.
   * Returns a promise only when it had to wait for the store, a render or a stream.
   */
  function handle(req: IncomingMessage, res: ServerResponse, key: string, target: string, rawRest: string, ip: string): void | Promise<void> {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD' && method !== 'PUT') return text(res, 405, 'Method Not Allowed', { Allow: 'GET, HEAD, PUT' });
    const cached = tree.tenantByKeyCached(key);
    if (cached === undefined) return tree.tenantByKey(key).then((found) => forTenant(req, res, method, found, target, rawRest, ip));
    return forTenant(req, res, method, cached ?? undefined, target, rawRest, ip);
  }

  function forTenant(req: IncomingMessage, res: ServerResponse, method: string, found: { tenant: Tenant; secrets: TenantRow } | undefined, target: string, rawRest: string, ip: string): void | Promise<void> {
    if (!found) return text(res, 404, 'Not Found');
    const name = resolve(rawRest);
    if (!name) return text(res, 404, 'Not Found');

    const now = clock.now().getTime();
    const blocked = failures.blockedFor(ip, now);
    if (blocked > 0) return text(res, 429, 'Too Many Requests', { 'Retry-After': String(Math.ceil(blocked / 1000)) });

    const header = req.headers.authorization;
    const mac = name.ref ? macOf(name.ref) : null;
    const candidates = tenantCandidates(found.secrets);
    // A device's own credentials are looked up only when the phone presents another username.
    const presented = header ? (/username="([^"]{0,100})"/.exec(header)?.[1] ?? basicCredentials(header)?.username) : undefined;
    if (mac && presented !== undefined && presented !== found.secrets.provisioning.username) {
      return tree.deviceCredentials(found.secrets.id, mac).then((own) => {
        if (own) candidates.push({ ...own, who: 'device' });
        return authorized(req, res, method, found, name, mac, candidates, target, ip, now);
      });
    }
    return authorized(req, res, method, found, name, mac, candidates, target, ip, now);
  }

  function authorized(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    found: { tenant: Tenant; secrets: TenantRow },
    name: { path: string; ref: FileRef | undefined },
    mac: string | null,
    candidates: Candidate[],
    target: string,
    ip: string,
    now: number,
  ): void | Promise<void> {
    const secure = !!(req.socket as TLSSocket).encrypted;
    const allowBasic = secure || found.tenant.settings.allowBasicOverHttp;
    const header = req.headers.authorization;
    const outcome = auth.verify(header, method, target, candidates, allowBasic);
    if (!outcome.ok) {
      if (header) {
        failures.fail(ip, now);
        // One line per failure, with the source address first-class (fail2ban-friendly).
        logger.warn(
          { event: 'provisioning_auth_failed', ip, tenant: found.tenant.slug, user: outcome.username?.slice(0, 64) ?? null, reason: outcome.reason, path: name.path.slice(0, 100) },
          `provisioning auth failed from ${ip}`,
        );
      }
      // Each challenge on its own header line: phone HTTP stacks do not parse a folded list.
      return text(res, 401, 'Unauthorized', { 'WWW-Authenticate': auth.challenges({ basic: allowBasic, ...(outcome.stale && { stale: true }) }) });
    }
    failures.clear(ip);

    const requester: Requester = {
      tenant: found.tenant,
      ip,
      userAgent: req.headers['user-agent'],
      protocol: secure ? 'https' : 'http',
      auth: outcome.who === 'device' && mac ? { kind: 'device', mac } : { kind: 'tenant' },
    };

    if (method === 'PUT') return put(req, res, requester, name.path);
    const quick = name.ref ? tree.readFromMemory(requester, name.ref) : { kind: 'not_found' as const };
    if (quick) return answer(req, res, method, requester, name.path, quick);
    return tree.read(requester, name.path, name.ref).then((r) => answer(req, res, method, requester, name.path, r));
  }

  function answer(req: IncomingMessage, res: ServerResponse, method: string, requester: Requester, path: string, r: ReadResult): void | Promise<void> {
    if (r.kind === 'not_found') return text(res, 404, 'Not Found');
    if (r.kind === 'unavailable') return text(res, 503, 'Service Unavailable', { 'Retry-After': String(r.retryAfterSeconds) });
    if (r.kind === 'blob') return download(req, res, method, requester, path, r);
    const headers: Record<string, string> = { ETag: r.etag, 'Content-Type': r.contentType, 'Cache-Control': 'no-cache' };
    const inm = req.headers['if-none-match'];
    if (inm && inm.split(',').some((t) => t.trim() === r.etag || t.trim() === '*')) return send(res, 304, headers);
    headers['Content-Length'] = String(r.body.length);
    if (method === 'HEAD') return send(res, 200, headers);
    return send(res, 200, headers, r.body);
  }

  async function download(req: IncomingMessage, res: ServerResponse, method: string, requester: Requester, path: string, r: Extract<ReadResult, { kind: 'blob' }>): Promise<void> {
    // Storm control: HEAD and conditional requests cost nothing; downloads take a slot.
    const limiter = deps.firmwareLimiter;
    const release = limiter && method === 'GET' ? limiter.acquire(await tree.siteForAddress(requester.tenant.id, requester.ip)) : () => undefined;
    if (!release) {
      access.info({ ip: requester.ip, tenant: requester.tenant.slug, path, status: 503 }, 'firmware download deferred: transfer cap reached');
      return text(res, 503, 'Service Unavailable', { 'Retry-After': String((limiter as TransferLimiter).retryAfterSeconds()) });
    }
    res.once('close', release);
    const id = requestIds.get(res);
    if (id !== undefined) res.setHeader('X-Request-Id', id);
    try {
      await serveBlob(req, res, r);
    } catch {
      res.destroy(); // the phone went away mid-download
    } finally {
      release();
    }
  }

  async function put(req: IncomingMessage, res: ServerResponse, requester: Requester, path: string): Promise<void> {
    if (!parseName(path)) return text(res, 404, 'Not Found');
    const limit = tree.uploadLimit(path);
    if (!limit) return text(res, 405, 'Method Not Allowed', { Allow: 'GET, HEAD' });
    const declared = req.headers['content-length'];
    if (declared !== undefined && (!/^\d{1,12}$/.test(declared) || Number(declared) > limit.maxBytes)) {
      return text(res, 413, 'Payload Too Large', { Connection: 'close' });
    }
    const body = await readCapped(req, limit.maxBytes);
    if (!body) return text(res, 413, 'Payload Too Large', { Connection: 'close' });
    const r = await tree.write(requester, path, body);
    switch (r.kind) {
      case 'stored':
        return send(res, 204, {});
      case 'not_found':
        return text(res, 404, 'Not Found');
      case 'not_allowed':
        return text(res, 405, 'Method Not Allowed', { Allow: 'GET, HEAD' });
      case 'too_large':
        return text(res, 413, 'Payload Too Large');
      case 'bad':
        logger.info({ ip: requester.ip, tenant: requester.tenant.slug, path, reason: r.message }, 'upload refused');
        return text(res, 400, `Bad Request: ${r.message}`);
    }
  }

  // Request ids on the hot path: a per-process prefix and a counter (randomUUID costs more).
  const idPrefix = randomUUID().slice(0, 8);
  let idCounter = 0;

  return (req, res) => {
    const target = req.url ?? '/';
    let key: string | undefined;
    let rest: string;
    let pending: Promise<string | undefined> | undefined;
    const q = target.indexOf('?');
    const pathPart = q < 0 ? target : target.slice(0, q);
    if (pathPart.startsWith('/p/')) {
      const slash = pathPart.indexOf('/', 3);
      if (slash < 0) return false;
      key = pathPart.slice(3, slash);
      rest = pathPart.slice(slash + 1);
    } else if (deps.defaultTenantKey && pathPart.startsWith('/') && !ADMIN_PREFIXES.some((p) => pathPart.startsWith(p))) {
      pending = deps.defaultTenantKey();
      rest = pathPart.slice(1);
    } else {
      return false;
    }
    const started = performance.now();
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && /^[A-Za-z0-9._-]{1,100}$/.test(given) ? given : `${idPrefix}-${(++idCounter).toString(36)}`;
    requestIds.set(res, requestId);
    const raw = req.socket.remoteAddress ?? '';
    const ip = raw.startsWith('::ffff:') ? raw.slice(7) : raw;
    const finish = () => {
      if (requestLine.enabled()) {
        requestLine.write({ reqId: requestId, method: req.method ?? '', path: pathPart, status: res.statusCode, ms: Math.round((performance.now() - started) * 10) / 10, ip });
      }
    };
    const failed = (err: unknown) => {
      logger.error({ err, reqId: requestId }, 'unhandled error on the phone path');
      if (!res.headersSent) text(res, 500, 'Internal Server Error');
      else res.destroy();
    };
    let out: void | Promise<void> = undefined;
    try {
      out = key !== undefined ? handle(req, res, key, target, rest, ip) : (pending as Promise<string | undefined>).then((k) => (k ? handle(req, res, k, target, rest, ip) : text(res, 404, 'Not Found')));
    } catch (err) {
      failed(err);
    }
    if (out) out.catch(failed).finally(finish);
    else finish();
    return true;
  };
}

/** The request body, or `undefined` once it passes `max` bytes (reading stops there). */
function readCapped(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > max) {
        done = true;
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (err) => {
      if (!done) reject(err);
    });
  });
}
