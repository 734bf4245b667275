import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import { createServer as createHttpServer } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import type { DeviceHandler } from './device-routes.ts';
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
  /** Takes the phones' requests before the app sees them. */
  deviceHandler?: DeviceHandler;
  /** Called for every TLS connection once its handshake is done. */
  onSecureConnection?: (socket: TLSSocket) => void;
}

/** Binds one HTTP or HTTPS listener: the phone handler first, then the Hono app. */
export async function startHttp(opts: ListenOptions, app: Hono<any>): Promise<ListenerHandle> {
  const appListener = getRequestListener(app.fetch);
  const device = opts.deviceHandler;
  const listener: Parameters<typeof createHttpServer>[1] = device
    ? (req, res) => {
        if (!device(req, res)) void appListener(req, res);
      }
    : (req, res) => void appListener(req, res);
  const server: Server = opts.tls ? createHttpsServer(opts.tls, listener) : createHttpServer(listener);
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
        // Not unref'd: close() must settle even when nothing else keeps the process alive.
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
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
