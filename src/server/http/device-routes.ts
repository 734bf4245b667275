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
import { CappedMap } from '../../capped-map.ts';

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

/**
 * One phone request, whichever way it arrived: read by Node's HTTP server, or by the wire lane
 * (`wire.ts`) that answers kept-alive GETs and HEADs without Node's request objects.
 */
export interface PhoneExchange {
  readonly method: string;
  /** The request target exactly as sent. */
  readonly target: string;
  readonly ip: string;
  readonly secure: boolean;
  readonly authorization: string | undefined;
  readonly ifNoneMatch: string | undefined;
  readonly userAgent: string | undefined;
  /** The `X-Request-Id` the client sent, unchecked. */
  readonly givenRequestId: string | undefined;
  /** The id the handler gives the request (the client's, when it is a safe one). */
  requestId: string;
  /** The answer's status, once sent. */
  readonly status: number;
  readonly sent: boolean;
  /** The whole answer: status, headers and body (none for HEAD; the lane drops it). */
  send(status: number, headers: Record<string, string | string[]>, body?: Buffer): void;
  destroy(): void;
  /** Node's request and response, which uploads and firmware streams need; the wire lane has none. */
  readonly node: { req: IncomingMessage; res: ServerResponse } | undefined;
}

export interface DeviceHandler {
  /** Node's request listener part: answers a phone's request, or returns false (the admin app takes it). */
  node(req: IncomingMessage, res: ServerResponse): boolean;
  /**
   * The wire lane's: takes a GET or HEAD and answers it (now or later), or returns false having
   * touched nothing, and the connection goes to Node (admin paths, firmware streams).
   */
  wire(ex: PhoneExchange): boolean;
}

/** A request as Node's HTTP server read it. */
class NodeExchange implements PhoneExchange {
  requestId = '';
  readonly node: { req: IncomingMessage; res: ServerResponse };
  readonly ip: string;
  constructor(req: IncomingMessage, res: ServerResponse) {
    this.node = { req, res };
    const raw = req.socket.remoteAddress ?? '';
    this.ip = raw.startsWith('::ffff:') ? raw.slice(7) : raw;
  }
  get method() {
    return this.node.req.method ?? 'GET';
  }
  get target() {
    return this.node.req.url ?? '/';
  }
  get secure() {
    return !!(this.node.req.socket as TLSSocket).encrypted;
  }
  get authorization() {
    return this.node.req.headers.authorization;
  }
  get ifNoneMatch() {
    return this.node.req.headers['if-none-match'];
  }
  get userAgent() {
    return this.node.req.headers['user-agent'];
  }
  get givenRequestId() {
    const v = this.node.req.headers['x-request-id'];
    return typeof v === 'string' ? v : undefined;
  }
  get status() {
    return this.node.res.statusCode;
  }
  get sent() {
    return this.node.res.headersSent;
  }
  send(status: number, headers: Record<string, string | string[]>, body?: Buffer): void {
    this.node.res.writeHead(status, headers);
    this.node.res.end(body);
  }
  destroy(): void {
    this.node.res.destroy();
  }
}

/** A safe name below a provisioning base, and the file it refers to (if any). */
type Name = { path: string; ref: FileRef | undefined };
/** A phone's request target: whose base, which name, and the path for the access line. */
type Route = { key: string | undefined; name: Name | null; path: string };

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

  /** Every answer but a firmware stream, with the request id. */
  function send(ex: PhoneExchange, status: number, headers: Record<string, string | string[]>, body?: Buffer | string): void {
    const b = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
    if (b !== undefined && headers['Content-Length'] === undefined) headers['Content-Length'] = String(b.length);
    headers['X-Request-Id'] = ex.requestId;
    ex.send(status, headers, b);
  }

  const text = (ex: PhoneExchange, status: number, msg: string, extra: Record<string, string | string[]> = {}) =>
    send(ex, status, { 'Content-Type': 'text/plain; charset=UTF-8', ...extra }, msg);

  /** Names below a base, resolved once: phones ask for the same few names again and again. */
  const names = new CappedMap<string, Name | null>(50_000);
  function resolve(rawRest: string): Name | null {
    let hit = names.get(rawRest);
    if (hit === undefined) {
      const path = safeRelativePath(rawRest);
      hit = path ? { path, ref: parseName(path) } : null;
      names.set(rawRest, hit);
    }
    return hit;
  }

  /**
   * One phone request. Synchronous for as long as everything it needs is in memory (the cached
   * tenant, its credentials, the rendered file): a boot storm's requests never wait on a promise.
   * Returns a promise only when it had to wait for the store, a render or a stream.
   */
  function handle(ex: PhoneExchange, key: string, name: Name | null): void | Promise<void> {
    const method = ex.method;
    if (method !== 'GET' && method !== 'HEAD' && method !== 'PUT') return text(ex, 405, 'Method Not Allowed', { Allow: 'GET, HEAD, PUT' });
    const cached = tree.tenantByKeyCached(key);
    if (cached === undefined) return tree.tenantByKey(key).then((found) => forTenant(ex, method, found, name));
    return forTenant(ex, method, cached ?? undefined, name);
  }

  function forTenant(ex: PhoneExchange, method: string, found: { tenant: Tenant; secrets: TenantRow } | undefined, name: Name | null): void | Promise<void> {
    if (!found) return text(ex, 404, 'Not Found');
    if (!name) return text(ex, 404, 'Not Found');

    const now = clock.now().getTime();
    const blocked = failures.blockedFor(ex.ip, now);
    if (blocked > 0) return text(ex, 429, 'Too Many Requests', { 'Retry-After': String(Math.ceil(blocked / 1000)) });

    const header = ex.authorization;
    const mac = name.ref ? macOf(name.ref) : null;
    const candidates = tenantCandidates(found.secrets);
    // A device's own credentials are looked up only when the phone presents another username.
    const presented = header ? (/username="([^"]{0,100})"/.exec(header)?.[1] ?? basicCredentials(header)?.username) : undefined;
    if (mac && presented !== undefined && presented !== found.secrets.provisioning.username) {
      return tree.deviceCredentials(found.secrets.id, mac).then((own) => {
        if (own) candidates.push({ ...own, who: 'device' });
        return authorized(ex, method, found, name, mac, candidates, now);
      });
    }
    return authorized(ex, method, found, name, mac, candidates, now);
  }

  function authorized(
    ex: PhoneExchange,
    method: string,
    found: { tenant: Tenant; secrets: TenantRow },
    name: Name,
    mac: string | null,
    candidates: Candidate[],
    now: number,
  ): void | Promise<void> {
    const secure = ex.secure;
    const allowBasic = secure || found.tenant.settings.allowBasicOverHttp;
    const header = ex.authorization;
    const outcome = auth.verify(header, method, ex.target, candidates, allowBasic);
    if (!outcome.ok) {
      if (header) {
        failures.fail(ex.ip, now);
        // One line per failure, with the source address first-class (fail2ban-friendly).
        logger.warn(
          { event: 'provisioning_auth_failed', ip: ex.ip, tenant: found.tenant.slug, user: outcome.username?.slice(0, 64) ?? null, reason: outcome.reason, path: name.path.slice(0, 100) },
          `provisioning auth failed from ${ex.ip}`,
        );
      }
      // Each challenge on its own header line: phone HTTP stacks do not parse a folded list.
      return text(ex, 401, 'Unauthorized', { 'WWW-Authenticate': auth.challenges({ basic: allowBasic, ...(outcome.stale && { stale: true }) }) });
    }
    failures.clear(ex.ip);

    const requester: Requester = {
      tenant: found.tenant,
      ip: ex.ip,
      userAgent: ex.userAgent,
      protocol: secure ? 'https' : 'http',
      auth: outcome.who === 'device' && mac ? { kind: 'device', mac } : { kind: 'tenant' },
    };

    if (method === 'PUT') return put(ex, requester, name.path);
    const quick = name.ref ? tree.readFromMemory(requester, name.ref) : { kind: 'not_found' as const };
    if (quick) return answer(ex, method, requester, name.path, quick);
    return tree.read(requester, name.path, name.ref).then((r) => answer(ex, method, requester, name.path, r));
  }

  function answer(ex: PhoneExchange, method: string, requester: Requester, path: string, r: ReadResult): void | Promise<void> {
    if (r.kind === 'not_found') return text(ex, 404, 'Not Found');
    if (r.kind === 'unavailable') return text(ex, 503, 'Service Unavailable', { 'Retry-After': String(r.retryAfterSeconds) });
    if (r.kind === 'blob') return download(ex, method, requester, path, r);
    const headers: Record<string, string> = { ETag: r.etag, 'Content-Type': r.contentType, 'Cache-Control': 'no-cache' };
    const inm = ex.ifNoneMatch;
    if (inm && inm.split(',').some((t) => t.trim() === r.etag || t.trim() === '*')) return send(ex, 304, headers);
    headers['Content-Length'] = String(r.body.length);
    if (method === 'HEAD') return send(ex, 200, headers);
    return send(ex, 200, headers, r.body);
  }

  async function download(ex: PhoneExchange, method: string, requester: Requester, path: string, r: Extract<ReadResult, { kind: 'blob' }>): Promise<void> {
    // The wire lane hands firmware names to Node before reading them, so this never happens there.
    if (!ex.node) return text(ex, 500, 'Internal Server Error');
    const { req, res } = ex.node;
    // Storm control: HEAD and conditional requests cost nothing; downloads take a slot.
    const limiter = deps.firmwareLimiter;
    const release = limiter && method === 'GET' ? limiter.acquire(await tree.siteForAddress(requester.tenant.id, requester.ip)) : () => undefined;
    if (!release) {
      access.info({ ip: requester.ip, tenant: requester.tenant.slug, path, status: 503 }, 'firmware download deferred: transfer cap reached');
      return text(ex, 503, 'Service Unavailable', { 'Retry-After': String((limiter as TransferLimiter).retryAfterSeconds()) });
    }
    res.once('close', release);
    res.setHeader('X-Request-Id', ex.requestId);
    try {
      await serveBlob(req, res, r);
    } catch {
      res.destroy(); // the phone went away mid-download
    } finally {
      release();
    }
  }

  async function put(ex: PhoneExchange, requester: Requester, path: string): Promise<void> {
    if (!ex.node) return text(ex, 500, 'Internal Server Error'); // the wire lane reads no bodies
    const req = ex.node.req;
    if (!parseName(path)) return text(ex, 404, 'Not Found');
    const limit = tree.uploadLimit(path);
    if (!limit) return text(ex, 405, 'Method Not Allowed', { Allow: 'GET, HEAD' });
    const declared = req.headers['content-length'];
    if (declared !== undefined && (!/^\d{1,12}$/.test(declared) || Number(declared) > limit.maxBytes)) {
      return text(ex, 413, 'Payload Too Large', { Connection: 'close' });
    }
    const body = await readCapped(req, limit.maxBytes);
    if (!body) return text(ex, 413, 'Payload Too Large', { Connection: 'close' });
    const r = await tree.write(requester, path, body);
    switch (r.kind) {
      case 'stored':
        return send(ex, 204, {});
      case 'not_found':
        return text(ex, 404, 'Not Found');
      case 'not_allowed':
        return text(ex, 405, 'Method Not Allowed', { Allow: 'GET, HEAD' });
      case 'too_large':
        return text(ex, 413, 'Payload Too Large');
      case 'bad':
        logger.info({ ip: requester.ip, tenant: requester.tenant.slug, path, reason: r.message }, 'upload refused');
        return text(ex, 400, `Bad Request: ${r.message}`);
    }
  }

  // Request ids on the hot path: a per-process prefix and a counter (randomUUID costs more).
  const idPrefix = randomUUID().slice(0, 8);
  let idCounter = 0;

  /**
   * Where a target goes: a tenant's base (`key`), the single-tenant root, or not the phones' at all;
   * with the name below the base, resolved once for both lanes.
   */
  function route(target: string): Route | undefined {
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    if (path.startsWith('/p/')) {
      const slash = path.indexOf('/', 3);
      if (slash < 0) return undefined;
      return { key: path.slice(3, slash), name: resolve(path.slice(slash + 1)), path };
    }
    if (deps.defaultTenantKey && path.startsWith('/') && !ADMIN_PREFIXES.some((p) => path.startsWith(p))) {
      return { key: undefined, name: resolve(path.slice(1)), path };
    }
    return undefined;
  }

  /** Runs one routed request to its answer, with its request id, error boundary and access line. */
  function enter(ex: PhoneExchange, r: Route): void {
    const started = performance.now();
    const given = ex.givenRequestId;
    ex.requestId = given !== undefined && /^[A-Za-z0-9._-]{1,100}$/.test(given) ? given : `${idPrefix}-${(++idCounter).toString(36)}`;
    let out: void | Promise<void> = undefined;
    try {
      const key = r.key;
      out =
        key !== undefined
          ? handle(ex, key, r.name)
          : (deps.defaultTenantKey as () => Promise<string | undefined>)().then((k) => (k ? handle(ex, k, r.name) : text(ex, 404, 'Not Found')));
    } catch (err) {
      failed(ex, err);
    }
    // Closures only for the few requests that wait: a boot storm's are answered before this line.
    if (out) out.catch((err: unknown) => failed(ex, err)).finally(() => finish(ex, r, started));
    else finish(ex, r, started);
  }

  function failed(ex: PhoneExchange, err: unknown): void {
    logger.error({ err, reqId: ex.requestId }, 'unhandled error on the phone path');
    if (!ex.sent) text(ex, 500, 'Internal Server Error');
    else ex.destroy();
  }

  function finish(ex: PhoneExchange, r: Route, started: number): void {
    if (requestLine.enabled()) {
      requestLine.write({ reqId: ex.requestId, method: ex.method, path: r.path, status: ex.status, ms: Math.round((performance.now() - started) * 10) / 10, ip: ex.ip });
    }
  }

  return {
    node(req, res) {
      const r = route(req.url ?? '/');
      if (!r) return false;
      enter(new NodeExchange(req, res), r);
      return true;
    },
    wire(ex) {
      const r = route(ex.target);
      if (!r) return false;
      // Firmware streams (ranges, transfer slots) are Node's: decided before anything is touched.
      if (r.name?.ref?.kind === 'firmware') return false;
      enter(ex, r);
      return true;
    },
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
