import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { XMLParser } from 'fast-xml-parser';
import { digestAuthorization } from '../server/http/device-auth.ts';

/**
 * A simulated Polycom phone: boots the way `reference/polycom.md` §2 describes — master file,
 * fallback, every CONFIG_FILES entry, the optional files, then log uploads — over HTTP or HTTPS
 * with Basic or Digest credentials. Used by the integration tests, the benchmark and the
 * container test (`edgeprov phone-sim`).
 */
export interface PhoneOptions {
  /** Provisioning base, e.g. `https://host:8443/p/<key>/`. */
  base: string;
  mac: string;
  model?: string;
  firmware?: string;
  username?: string;
  password?: string;
  /** PEM of the CA to trust for HTTPS. */
  ca?: string;
  /** A shared keep-alive agent; otherwise one connection per request. */
  agent?: HttpAgent | HttpsAgent;
  /** Also fetch the optional files phones probe for. @default true */
  optional?: boolean;
  /** Upload boot and app logs. @default true */
  uploadLogs?: boolean;
  /** Fetch the firmware named by the master file. @default false */
  firmware_download?: boolean;
}

export interface RequestRecord {
  method: string;
  name: string;
  status: number;
  bytes: number;
  ms: number;
}

export interface BootReport {
  mac: string;
  /** Which master file the phone ended up using. */
  master: 'own' | 'default' | 'none';
  configFiles: string[];
  files: Record<string, string>;
  requests: RequestRecord[];
}

interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  /** Every WWW-Authenticate header on its own (Node joins repeated ones into one string). */
  challenges: string[];
  body: Buffer;
}

export class PhoneClient {
  readonly #opts: PhoneOptions;
  readonly #url: URL;
  #challenge: string | undefined;
  #nc = 0;
  readonly requests: RequestRecord[] = [];

  constructor(opts: PhoneOptions) {
    this.#opts = opts;
    this.#url = new URL(opts.base.endsWith('/') ? opts.base : `${opts.base}/`);
  }

  get userAgent(): string {
    const model = this.#opts.model ?? 'VVX500';
    const family = model.startsWith('SPIP') ? 'SoundPointIP' : model.startsWith('SSIP') ? 'SoundStationIP' : 'VVX';
    const uaModel = model.replace(/^(VVX|SPIP|SSIP)/, '$1_');
    return `FileTransport Polycom${family}-${uaModel}-UA/${this.#opts.firmware ?? '5.9.7.4477'} Type/Application`;
  }

  #authorization(method: string, path: string): string | undefined {
    const { username, password } = this.#opts;
    if (username === undefined || password === undefined || !this.#challenge) return undefined;
    if (/^Basic/i.test(this.#challenge)) return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    return digestAuthorization(this.#challenge, { username, password, method, uri: path, nc: ++this.#nc });
  }

  #send(method: string, path: string, body?: Buffer): Promise<Response> {
    const secure = this.#url.protocol === 'https:';
    const headers: Record<string, string> = { 'User-Agent': this.userAgent };
    const auth = this.#authorization(method, path);
    if (auth) headers.Authorization = auth;
    if (body) headers['Content-Length'] = String(body.length);
    const options = {
      method,
      host: this.#url.hostname.replace(/^\[|\]$/g, ''),
      port: this.#url.port,
      path,
      headers,
      ...(this.#opts.agent ? { agent: this.#opts.agent } : { agent: false as const }),
      ...(secure && this.#opts.ca && { ca: this.#opts.ca }),
      ...(secure && { servername: this.#url.hostname === '127.0.0.1' ? 'localhost' : this.#url.hostname }),
    };
    return new Promise((resolve, reject) => {
      const req = (secure ? httpsRequest : httpRequest)(options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const challenges = res.rawHeaders.filter((_, i, a) => i % 2 === 1 && (a[i - 1] as string).toLowerCase() === 'www-authenticate');
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, challenges, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(30_000, () => req.destroy(new Error(`timeout ${method} ${path}`)));
      req.end(body);
    });
  }

  /** One request as a phone makes it: retried once with credentials after a 401 challenge. */
  async fetch(method: string, name: string, body?: Buffer): Promise<Response> {
    const path = this.#url.pathname + name;
    const started = performance.now();
    let res = await this.#send(method, path, body);
    if (res.status === 401 && this.#opts.username !== undefined) {
      const all = res.challenges;
      this.#challenge = all.find((c) => /algorithm=SHA-256/i.test(c)) ?? all.find((c) => /^Digest/i.test(c)) ?? all.find((c) => /^Basic/i.test(c));
      this.#nc = 0;
      res = await this.#send(method, path, body);
    }
    this.requests.push({ method, name, status: res.status, bytes: res.body.length, ms: performance.now() - started });
    return res;
  }
}

const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' });

/** Boots one phone and reports every request it made. */
export async function bootPhone(opts: PhoneOptions): Promise<BootReport> {
  const phone = new PhoneClient(opts);
  const mac = opts.mac.toLowerCase().replace(/[^0-9a-f]/g, '');
  const files: Record<string, string> = {};
  let master: BootReport['master'] = 'own';
  let res = await phone.fetch('GET', `${mac}.cfg`);
  if (res.status === 404) {
    master = 'default';
    res = await phone.fetch('GET', '000000000000.cfg');
  }
  if (res.status !== 200) return { mac, master: 'none', configFiles: [], files, requests: phone.requests };
  files[master === 'own' ? `${mac}.cfg` : '000000000000.cfg'] = res.body.toString('utf8');
  const app = (xml.parse(res.body.toString('utf8')) as { APPLICATION?: Record<string, unknown> }).APPLICATION ?? {};
  const attr = (k: string): string => (typeof app[k] === 'string' ? (app[k] as string) : '');
  const dir = (k: string): string => (attr(k) ? `${attr(k).replace(/\/$/, '')}/` : '');
  const configFiles = attr('CONFIG_FILES')
    .split(',')
    .map((s) => s.trim().replace(/\[PHONE_MAC_ADDRESS\]/g, mac))
    .filter(Boolean);

  if (opts.firmware_download && attr('APP_FILE_PATH')) await phone.fetch('GET', attr('APP_FILE_PATH'));
  for (const f of configFiles) {
    const r = await phone.fetch('GET', f);
    if (r.status === 200) files[f] = r.body.toString('utf8');
  }
  if (opts.optional !== false) {
    const overrides = dir('OVERRIDES_DIRECTORY');
    const contacts = dir('CONTACTS_DIRECTORY');
    const calls = dir('CALL_LISTS_DIRECTORY');
    for (const f of [
      `${overrides}${mac}-phone.cfg`,
      `${overrides}${mac}-web.cfg`,
      '000000000000-license.cfg',
      `${mac}-license.cfg`,
      `${contacts}${mac}-directory.xml`,
      '000000000000-directory.xml',
      `${calls}${mac}-calls.xml`,
    ]) {
      const r = await phone.fetch('GET', f);
      if (r.status === 200) files[f] = r.body.toString('utf8');
    }
  }
  if (opts.uploadLogs !== false) {
    const logs = dir('LOG_FILE_DIRECTORY');
    const line = `${new Date().toISOString()} phone-sim ${mac}: boot complete\n`;
    await phone.fetch('PUT', `${logs}${mac}-boot.log`, Buffer.from(line));
    await phone.fetch('PUT', `${logs}${mac}-app.log`, Buffer.from(line));
  }
  return { mac, master, configFiles, files, requests: phone.requests };
}

/** A keep-alive agent suited to the simulator (many phones, one process). */
export function keepAliveAgent(secure: boolean, ca?: string): HttpAgent | HttpsAgent {
  return secure ? new HttpsAgent({ keepAlive: true, maxSockets: 256, ...(ca && { ca }) }) : new HttpAgent({ keepAlive: true, maxSockets: 256 });
}
