import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp, type App } from '../../src/app.ts';
import type { Clock } from '../../src/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger, silentLogger } from '../../src/logger.ts';
import type { TftpHandle } from '../../src/server/tftp/server.ts';

export interface TestServer {
  app: App;
  base: string;
  /** `https://127.0.0.1:<port>` when HTTPS is on. */
  httpsBase: string | undefined;
  tftpPort: number | undefined;
  /** The TFTP listener, when on. */
  tftp: TftpHandle | undefined;
  dataDir: string;
  /** JSON request against the running server; `token` becomes a bearer header. */
  call(method: string, path: string, opts?: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> }): Promise<{
    status: number;
    body: any;
    headers: Headers;
  }>;
  stop(): Promise<void>;
}

export function tempDir(prefix = 'edgeprov-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A real server on 127.0.0.1:0 with its own data dir; cheap password hashing for speed. */
export async function startServer(overrides: Record<string, string> = {}, opts: { clock?: Clock } = {}): Promise<TestServer> {
  const dataDir = tempDir();
  const config = loadConfig({
    env: {},
    flags: { 'data-dir': dataDir, host: '127.0.0.1', 'http-port': '0', 'auth-scrypt-cost': '1024', 'https-enabled': 'false', 'tftp-enabled': 'false', ...overrides },
  });
  const app = await createApp({ config, logger: process.env.DBG ? createLogger({ level: 'debug' }) : silentLogger(), ...(opts.clock && { clock: opts.clock }) });
  const running = await app.listen();
  const base = `http://127.0.0.1:${running.http?.address.port}`;
  const httpsBase = running.https ? `https://127.0.0.1:${running.https.address.port}` : undefined;
  return {
    app,
    base,
    httpsBase,
    tftpPort: running.tftp?.address.port,
    tftp: running.tftp,
    dataDir,
    async call(method, path, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      let body: string | undefined = opts.raw;
      if (opts.body !== undefined) {
        body = JSON.stringify(opts.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(base + path, { method, headers, ...(body !== undefined && { body }) });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON: keep the text
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async stop() {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A server with HTTPS on too (generated certificates). */
export const startServerWithTls = (overrides: Record<string, string> = {}) =>
  startServer({ 'https-enabled': 'true', 'https-port': '0', 'public-hosts': '127.0.0.1', ...overrides });

export const ADMIN = { email: 'root@example.com', password: 'correct horse battery' };

/** Creates the system admin and returns a signed-in token. */
export async function bootstrapAdmin(s: TestServer): Promise<string> {
  await s.app.accounts.init(ADMIN);
  const r = await s.call('POST', '/api/v1/auth/token', { body: ADMIN });
  if (r.status !== 200) throw new Error(`sign-in failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.token as string;
}
