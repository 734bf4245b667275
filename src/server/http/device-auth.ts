import { createHash, createHmac, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Clock } from '../../clock.ts';
import { CappedMap } from '../../capped-map.ts';

/**
 * HTTP authentication of phones: Basic (RFC 7617) and Digest (RFC 7616, MD5 and SHA-256, qop=auth).
 * Nonces are stateless (time + HMAC) and expire; each nonce's counter must grow, so a captured
 * request cannot be replayed.
 */
export interface Candidate {
  username: string;
  password: string;
  /** Returned when this candidate matched. */
  who: 'tenant' | 'tenant-previous' | 'device';
}

export type AuthOutcome =
  | { ok: true; who: Candidate['who']; username: string }
  | { ok: false; reason: string; stale?: boolean; username?: string };

export const REALM = 'edgeprov';
const ALGORITHMS = { MD5: 'md5', 'SHA-256': 'sha256' } as const;
type Algorithm = keyof typeof ALGORITHMS;

const h = (alg: Algorithm, s: string): string => createHash(ALGORITHMS[alg]).update(s).digest('hex');

/**
 * Equality in time that depends only on the lengths (as timingSafeEqual's): every character is
 * compared, without the two buffers per comparison that timingSafeEqual would need here.
 */
export function safeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Parses the parameters of a Digest Authorization header (quoted or token values). */
export function parseDigestParams(s: string): Map<string, string> | undefined {
  const out = new Map<string, string>();
  const re = /\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*(?:,|$)/gy;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(s)) !== null) {
    const key = (m[1] as string).toLowerCase();
    if (out.has(key)) return undefined;
    out.set(key, m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] as string));
    last = re.lastIndex;
    if (last >= s.length) break;
  }
  return last >= s.trimEnd().length ? out : undefined;
}

/**
 * The username and password of a Basic header (RFC 7617), or `undefined` when it is not one. Phones
 * send the same header on every request: decoded ones are remembered (bounded).
 */
export function basicCredentials(header: string): { username: string; password: string } | undefined {
  let hit = BASIC.get(header);
  if (hit === undefined) {
    const m = /^Basic\s+([A-Za-z0-9+/=]{1,1024})$/i.exec(header);
    const decoded = m?.[1] ? Buffer.from(m[1], 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    hit = colon < 0 ? null : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    BASIC.set(header, hit);
  }
  return hit ?? undefined;
}
const BASIC = new CappedMap<string, { username: string; password: string } | null>(10_000);

export interface DeviceAuthOptions {
  clock: Clock;
  /** How long a nonce is good for. @default 300 */
  nonceTtlSeconds?: number;
}

export class DeviceAuthenticator {
  readonly #secret = randomBytes(32);
  readonly #ttlMs: number;
  readonly #counters: LRUCache<string, number>;

  constructor(private readonly opts: DeviceAuthOptions) {
    this.#ttlMs = (opts.nonceTtlSeconds ?? 300) * 1000;
    this.#counters = new LRUCache({ max: 200_000, ttl: this.#ttlMs, ttlAutopurge: false });
  }

  #nonce(): string {
    const ts = this.opts.clock.now().getTime().toString(36);
    const rnd = randomBytes(9).toString('base64url');
    const mac = createHmac('sha256', this.#secret).update(`${ts}.${rnd}`).digest('base64url').slice(0, 22);
    return `${ts}.${rnd}.${mac}`;
  }

  /** `valid`, `stale` (expired but ours), or `bad`. */
  #checkNonce(nonce: string): 'valid' | 'stale' | 'bad' {
    const [ts, rnd, mac, extra] = nonce.split('.');
    if (!ts || !rnd || !mac || extra !== undefined) return 'bad';
    const want = createHmac('sha256', this.#secret).update(`${ts}.${rnd}`).digest('base64url').slice(0, 22);
    if (!safeEqual(mac, want)) return 'bad';
    const age = this.opts.clock.now().getTime() - parseInt(ts, 36);
    return age >= 0 && age <= this.#ttlMs ? 'valid' : 'stale';
  }

  /** `WWW-Authenticate` values for a 401: Digest SHA-256 and MD5, and Basic where it is allowed. */
  challenges(opts: { basic: boolean; stale?: boolean }): string[] {
    const stale = opts.stale ? ', stale=true' : '';
    const out = (['SHA-256', 'MD5'] as const).map(
      (alg) => `Digest realm="${REALM}", qop="auth", algorithm=${alg}, nonce="${this.#nonce()}", opaque="${REALM}"${stale}`,
    );
    if (opts.basic) out.push(`Basic realm="${REALM}", charset="UTF-8"`);
    return out;
  }

  /**
   * Checks an Authorization header against the accepted credentials. `uri` is the request target
   * as sent (path and query), which a Digest response must be bound to.
   */
  verify(header: string | undefined, method: string, uri: string, candidates: Candidate[], allowBasic: boolean): AuthOutcome {
    if (!header) return { ok: false, reason: 'no credentials' };
    const space = header.indexOf(' ');
    const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
    const rest = space < 0 ? '' : header.slice(space + 1).trim();
    if (scheme === 'basic') {
      if (!allowBasic) return { ok: false, reason: 'Basic is not accepted over plain HTTP for this tenant' };
      const pair = basicCredentials(header);
      if (!pair) return { ok: false, reason: 'malformed Basic credentials' };
      const { username, password } = pair;
      // Compare against every candidate so timing does not tell which usernames exist.
      let hit: Candidate | undefined;
      for (const c of candidates) if (safeEqual(c.username, username) && safeEqual(c.password, password) && !hit) hit = c;
      return hit ? { ok: true, who: hit.who, username } : { ok: false, reason: 'wrong username or password', username };
    }
    if (scheme !== 'digest') return { ok: false, reason: `unsupported scheme ${scheme.slice(0, 20)}` };
    if (rest.length > 4096) return { ok: false, reason: 'oversize Digest header' };
    const p = parseDigestParams(rest);
    if (!p) return { ok: false, reason: 'malformed Digest header' };
    const username = p.get('username') ?? '';
    const nonce = p.get('nonce') ?? '';
    const response = (p.get('response') ?? '').toLowerCase();
    const alg = (p.get('algorithm') ?? 'MD5').toUpperCase() === 'SHA-256' ? 'SHA-256' : (p.get('algorithm') ?? 'MD5').toUpperCase() === 'MD5' ? 'MD5' : undefined;
    if (!alg) return { ok: false, reason: `unsupported algorithm ${p.get('algorithm')?.slice(0, 20)}`, username };
    if (p.get('realm') !== REALM) return { ok: false, reason: 'wrong realm', username };
    if (p.get('uri') !== uri) return { ok: false, reason: 'Digest uri does not match the request', username };
    const qop = p.get('qop');
    const nc = p.get('nc') ?? '';
    const cnonce = p.get('cnonce') ?? '';
    if (qop !== 'auth' || !/^[0-9a-fA-F]{8}$/.test(nc) || !cnonce) return { ok: false, reason: 'Digest needs qop=auth with nc and cnonce', username };
    const state = this.#checkNonce(nonce);
    if (state === 'bad') return { ok: false, reason: 'unknown nonce', username };
    const ha2 = h(alg, `${method}:${uri}`);
    let hit: Candidate | undefined;
    for (const c of candidates) {
      if (c.username !== username) continue;
      const expected = h(alg, `${h(alg, `${c.username}:${REALM}:${c.password}`)}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`);
      if (safeEqual(expected, response) && !hit) hit = c;
    }
    if (!hit) return { ok: false, reason: 'wrong username or password', username };
    if (state === 'stale') return { ok: false, reason: 'nonce expired', stale: true, username };
    const count = parseInt(nc, 16);
    const seen = this.#counters.get(nonce) ?? 0;
    if (count <= seen) return { ok: false, reason: 'replayed nonce count', username };
    this.#counters.set(nonce, count);
    return { ok: true, who: hit.who, username };
  }
}

/** The client side of Digest, for the phone simulator and tests. */
export function digestAuthorization(
  challenge: string,
  opts: { username: string; password: string; method: string; uri: string; nc?: number; cnonce?: string },
): string {
  const p = parseDigestParams(challenge.replace(/^Digest\s+/i, '')) ?? new Map<string, string>();
  const alg: Algorithm = (p.get('algorithm') ?? 'MD5').toUpperCase() === 'SHA-256' ? 'SHA-256' : 'MD5';
  const realm = p.get('realm') ?? '';
  const nonce = p.get('nonce') ?? '';
  const nc = (opts.nc ?? 1).toString(16).padStart(8, '0');
  const cnonce = opts.cnonce ?? randomBytes(8).toString('hex');
  const ha1 = h(alg, `${opts.username}:${realm}:${opts.password}`);
  const ha2 = h(alg, `${opts.method}:${opts.uri}`);
  const response = h(alg, `${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`);
  return `Digest username="${opts.username}", realm="${realm}", nonce="${nonce}", uri="${opts.uri}", algorithm=${alg}, qop=auth, nc=${nc}, cnonce="${cnonce}", response="${response}", opaque="${p.get('opaque') ?? ''}"`;
}
