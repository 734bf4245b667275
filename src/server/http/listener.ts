import type { AddressInfo, Socket } from 'node:net';
import type { Server } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import { createServer as createHttpServer } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import type { DeviceHandler } from './device-routes.ts';
import { WireConnection } from './wire.ts';
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

/**
 * Binds one HTTP or HTTPS listener. With a phone handler, each connection starts in the wire lane
 * (`wire.ts`), which answers phones' plain GETs and HEADs itself and hands the connection to Node's
 * HTTP server at the first request it does not take; there the phone handler comes first, then the
 * Hono app.
 */
export async function startHttp(opts: ListenOptions, app: Hono<any>): Promise<ListenerHandle> {
  const appListener = getRequestListener(app.fetch);
  const device = opts.deviceHandler;
  const listener: Parameters<typeof createHttpServer>[1] = device
    ? (req, res) => {
        if (!device.node(req, res)) void appListener(req, res);
      }
    : (req, res) => void appListener(req, res);
  const server: Server = opts.tls ? createHttpsServer(opts.tls, listener) : createHttpServer(listener);
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 30_000;
  server.requestTimeout = 300_000;
  const wires = new Set<WireConnection>();
  if (device) {
    // Node's own connection listener (added by the constructor) runs only for connections handed over.
    const event = opts.tls ? 'secureConnection' : 'connection';
    const nodeListeners = server.listeners(event) as Array<(socket: Socket) => void>;
    server.removeAllListeners(event);
    // Before the lane's own listeners: the hardening's error handler must see a socket still open.
    if (opts.onSecureConnection) server.on('secureConnection', opts.onSecureConnection);
    const handOver = (socket: Socket) => {
      for (const l of nodeListeners) l.call(server, socket);
    };
    server.on(event, (socket: Socket) => {
      const wire = new WireConnection(
        socket,
        {
          take: (ex) => device.wire(ex),
          handOver: (s) => {
            wires.delete(wire);
            handOver(s);
          },
          keepAliveMs: server.keepAliveTimeout,
          headersTimeoutMs: server.headersTimeout,
        },
        !!opts.tls,
      );
      wires.add(wire);
      socket.once('close', () => wires.delete(wire));
    });
  } else if (opts.onSecureConnection) {
    server.on('secureConnection', opts.onSecureConnection);
  }
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
        const timer = setTimeout(() => {
          server.closeAllConnections();
          for (const w of wires) w.socket.destroy();
        }, graceMs);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
        for (const w of wires) w.closeWhenIdle();
      });
      return closing;
    },
  };
}
