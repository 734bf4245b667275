import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import { createAdaptorServer } from '@hono/node-server';
import type { Hono } from 'hono';

export interface ListenerHandle {
  readonly address: AddressInfo;
  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then cuts the rest. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

export interface ListenOptions {
  host: string;
  port: number;
  /** Present: serve HTTPS with these options. */
  tls?: HttpsOptions;
  /** Called for every TLS connection once its handshake is done. */
  onSecureConnection?: (socket: TLSSocket) => void;
}

/** Binds one HTTP or HTTPS listener for a Hono app. */
export async function startHttp(opts: ListenOptions, app: Hono<any>): Promise<ListenerHandle> {
  const server = (
    opts.tls
      ? createAdaptorServer({ fetch: app.fetch, createServer: createHttpsServer, serverOptions: opts.tls })
      : createAdaptorServer({ fetch: app.fetch })
  ) as Server;
  if (opts.onSecureConnection) server.on('secureConnection', opts.onSecureConnection);
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 30_000;
  server.requestTimeout = 300_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    address,
    close(graceMs = 2000) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
