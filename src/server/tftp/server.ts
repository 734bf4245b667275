import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { isIPv6 } from 'node:net';
import type { Logger } from '../../logger.ts';
import { safeRelativePath } from '../../provisioning/names.ts';
import type { ProvisioningTree, Requester } from '../../provisioning/tree.ts';
import * as P from './packet.ts';
import { MAX_RETRIES, ReadSession, WriteSession, bufferSource, fileSource, negotiate, type BlockSource, type Negotiated, type Transport } from './session.ts';
import { nativePump, nativePumpUnavailable, type NativePump } from './native-pump.ts';
import { closeSync, openSync } from 'node:fs';
import type { TransferLimiter } from '../../firmware/limits.ts';

/**
 * The TFTP listener: a module of our own (the `tftp` package offers no windowsize and no hook for
 * a virtual tree). Each transfer gets its own socket (TID, RFC 1350 §4) and reads the same
 * provisioning tree as HTTP, so a phone gets the same bytes either way.
 */
export interface TftpOptions {
  host: string;
  port: number;
  /** Transfers at once; beyond it a request gets an error packet. @default 500 */
  maxSessions?: number;
  /** Retransmission timeout unless the client negotiates one. @default 1000 */
  timeoutMs?: number;
  /** Largest blksize granted. @default 8192 */
  maxBlksize?: number;
  /**
   * Who sends firmware blocks: `auto` the native pump when it was built (see native-pump.ts),
   * `javascript` always the event loop. Rendered files always go out from the event loop.
   * @default 'auto'
   */
  pump?: 'auto' | 'javascript';
}

export interface TftpHandle {
  readonly address: AddressInfo;
  readonly sessions: () => number;
  /** Who sends firmware blocks. */
  readonly pump: 'native' | 'javascript';
  /** Why the event loop does, when the native pump was asked for (`auto`) but is not there. */
  readonly pumpUnavailable: string | undefined;
  close(): Promise<void>;
}

export async function startTftp(opts: TftpOptions, deps: { tree: ProvisioningTree; logger: Logger; firmwareLimiter?: TransferLimiter | undefined }): Promise<TftpHandle> {
  const { tree, logger } = deps;
  const family = isIPv6(opts.host) ? 'udp6' : 'udp4';
  const main = createSocket({ type: family, reuseAddr: false });
  const maxSessions = opts.maxSessions ?? 500;
  const defaults = { timeoutMs: opts.timeoutMs ?? 1000, maxBlksize: Math.min(opts.maxBlksize ?? 8192, 65464) };
  const live = new Set<{ abort(): void }>();
  const pump = opts.pump === 'javascript' ? undefined : nativePump;
  let closing = false;
  /** The listener's numeric address once bound: transfer sockets bind to it too. */
  let bound: AddressInfo;

  const reply = (sock: Socket, to: RemoteInfo, buf: Buffer) => sock.send(buf, to.port, to.address, () => undefined);

  /**
   * A socket of the transfer's own (its TID, RFC 1350 §4), connected to the client: the kernel
   * filters other senders, and sends skip the address lookup.
   */
  async function openTransport(from: RemoteInfo): Promise<Transport & { sock: Socket }> {
    const sock = createSocket({ type: family });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, opts.host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    sock.on('error', (err) => logger.debug({ err }, 'tftp session socket error'));
    await new Promise<void>((resolve) => sock.connect(from.port, from.address, () => resolve()));
    // Closing waits for sends still in flight: the last ACK or an ERROR must not be dropped.
    let inFlight = 0;
    let closeAsked = false;
    const closeNow = () => {
      try {
        sock.close();
      } catch {
        // already closed
      }
    };
    const sent = () => {
      inFlight--;
      if (closeAsked && inFlight === 0) closeNow();
    };
    return {
      sock,
      send: (buf: Buffer) => {
        // DATA needs no completion callback (Node then sends synchronously, the cheap path): a read
        // ends only on the client's ACK of the last block, so no DATA is in flight at close.
        if (buf[1] === P.OP.DATA) return sock.send(buf);
        inFlight++;
        sock.send(buf, sent);
      },
      close: () => {
        closeAsked = true;
        if (inFlight === 0) closeNow();
      },
    };
  }

  function readSession(t: Transport & { sock: Socket }, source: BlockSource, n: Negotiated, ip: string, rel: string, release: () => void): void {
    const s = new ReadSession(t, source, n, (end) => {
      live.delete(s);
      release();
      if (!end.ok) logger.info({ ip, file: rel, reason: end.reason }, 'tftp read ended early');
    });
    live.add(s);
    bindSession(t.sock, s);
    s.start();
  }

  /** A firmware download handed to the native pump; false if it could not start (then the caller's JS session sends it). */
  function nativeRead(pump: NativePump, from: RemoteInfo, fd: number, size: number, n: Negotiated, ip: string, rel: string, release: () => void): boolean {
    let handle: unknown;
    const entry = { abort: () => pump.abort(handle) };
    try {
      handle = pump.read(
        { local: bound.address, address: from.address, port: from.port, fd, size, blksize: n.blksize, windowsize: n.windowsize, timeoutMs: n.timeoutMs, retries: MAX_RETRIES, ...(n.ack.size > 0 && { oack: P.oack(n.ack) }) },
        (ok, reason) => {
          live.delete(entry);
          release();
          if (!ok) logger.info({ ip, file: rel, reason }, 'tftp read ended early');
        },
      );
    } catch (err) {
      logger.warn({ err }, 'tftp native pump refused a transfer; sending it from the event loop');
      return false;
    }
    live.add(entry);
    return true;
  }

  async function onRequest(p: Extract<P.Packet, { op: 'RRQ' | 'WRQ' }>, from: RemoteInfo): Promise<void> {
    if (live.size >= maxSessions) {
      reply(main, from, P.error(P.ERR.notDefined, 'server busy: too many transfers, try again'));
      return;
    }
    // `<key>/<name>` picks a tenant by its provisioning key; a bare name, by the phone's subnet.
    const name = p.filename.replace(/^\/+/, '');
    const path = safeRelativePath(name.split('/').map(encodeURIComponent).join('/'));
    if (!path) {
      reply(main, from, P.error(P.ERR.accessViolation, 'illegal file name'));
      return;
    }
    const ip = from.address.startsWith('::ffff:') ? from.address.slice(7) : from.address;
    let tenant = await tree.tenantForAddress(ip);
    let rel = path;
    const slash = path.indexOf('/');
    if (slash > 0) {
      const byKey = await tree.tenantByKey(path.slice(0, slash));
      if (byKey) {
        tenant = byKey.tenant;
        rel = path.slice(slash + 1);
      }
    }
    if (!tenant || !tenant.settings.tftp) {
      reply(main, from, P.error(P.ERR.fileNotFound, 'file not found'));
      return;
    }
    const requester: Requester = { tenant, ip, userAgent: undefined, protocol: 'tftp', auth: { kind: 'none' } };
    // A refusal comes from a socket of its own too, as the transfer would have.
    const refuse = async (error: Buffer) => {
      const t = await openTransport(from);
      t.send(error);
      t.close();
    };

    if (p.op === 'RRQ') {
      const r = await tree.read(requester, rel);
      if (r.kind !== 'file' && r.kind !== 'blob') return refuse(r.kind === 'not_found' ? P.error(P.ERR.fileNotFound, 'file not found') : P.error(P.ERR.notDefined, 'not available yet, try again later'));
      if (r.kind === 'file') return readSession(await openTransport(from), bufferSource(r.body), negotiate(p.options, r.body.length, defaults), ip, rel, () => undefined);
      // Firmware: storm control, then blocks read from disk as they go out.
      const slot = deps.firmwareLimiter ? deps.firmwareLimiter.acquire(await tree.siteForAddress(tenant.id, ip)) : () => undefined;
      if (!slot) return refuse(P.error(P.ERR.notDefined, 'server busy: too many firmware downloads, try again later'));
      let fd: number;
      try {
        fd = openSync(r.path, 'r');
      } catch {
        slot();
        return refuse(P.error(P.ERR.fileNotFound, 'file not found'));
      }
      const release = () => {
        slot();
        closeSync(fd);
      };
      const n = negotiate(p.options, r.size, defaults);
      if (pump && nativeRead(pump, from, fd, r.size, n, ip, rel, release)) return;
      return readSession(await openTransport(from), fileSource(fd, r.size), n, ip, rel, release);
    }

    const limit = tree.uploadLimit(rel);
    if (!limit) return refuse(P.error(P.ERR.accessViolation, 'writing this file is not allowed'));
    const tsize = p.options.get('tsize');
    const size = tsize !== undefined && /^\d+$/.test(tsize) ? Number(tsize) : undefined;
    if (size !== undefined && size > limit.maxBytes) return refuse(P.error(P.ERR.diskFull, `upload larger than ${limit.maxBytes} bytes`));
    const transport = await openTransport(from);
    const n = negotiate(p.options, size, defaults);
    const commit = async (body: Buffer): Promise<string | undefined> => {
      const res = await tree.write(requester, rel, body);
      if (res.kind === 'stored') return undefined;
      logger.info({ ip, file: rel, result: res.kind }, 'tftp upload refused');
      return res.kind === 'bad' ? res.message : res.kind === 'too_large' ? 'file too large' : 'not allowed';
    };
    const w = new WriteSession(transport, n, limit.maxBytes, commit, (end) => {
      live.delete(w);
      if (!end.ok) logger.info({ ip, file: rel, reason: end.reason }, 'tftp write ended early');
    });
    live.add(w);
    bindSession(transport.sock, w);
    w.start();
  }

  function bindSession(sock: Socket, s: { onPacket(p: P.Packet): void; onAck?(block: number): void }): void {
    // The socket is connected to the client's TID: the kernel drops every other sender.
    sock.on('message', (msg) => {
      // Hot path of a download: a 4-byte ACK goes straight to the session, nothing allocated.
      if (s.onAck && msg.length === 4 && msg[0] === 0 && msg[1] === P.OP.ACK) return s.onAck(msg.readUInt16BE(2));
      let p: P.Packet;
      try {
        p = P.parse(msg);
      } catch {
        return; // a garbled packet in a transfer is dropped; the retransmission timer recovers
      }
      s.onPacket(p);
    });
  }

  main.on('message', (msg, from) => {
    if (closing) return;
    let p: P.Packet;
    try {
      p = P.parse(msg);
    } catch (err) {
      if (msg.length >= 2) reply(main, from, P.error(P.ERR.illegalOperation, (err as Error).message));
      return;
    }
    if (p.op !== 'RRQ' && p.op !== 'WRQ') return; // stray DATA/ACK/ERROR to the listening port
    onRequest(p, from).catch((err: unknown) => {
      logger.error({ err }, 'tftp request failed');
      reply(main, from, P.error(P.ERR.notDefined, 'internal error'));
    });
  });
  main.on('error', (err) => logger.warn({ err }, 'tftp socket error'));

  await new Promise<void>((resolve, reject) => {
    main.once('error', reject);
    main.bind(opts.port, opts.host, () => {
      main.off('error', reject);
      bound = main.address();
      resolve();
    });
  });

  let closed: Promise<void> | undefined;
  return {
    address: bound!,
    sessions: () => live.size,
    pump: pump ? 'native' : 'javascript',
    pumpUnavailable: opts.pump === 'javascript' ? undefined : nativePumpUnavailable,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        for (const s of [...live]) s.abort();
        main.close(() => resolve());
      });
      return closed;
    },
  };
}
