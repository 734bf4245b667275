import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { isIPv6 } from 'node:net';
import type { Logger } from '../../logger.ts';
import { safeRelativePath } from '../../provisioning/names.ts';
import type { ProvisioningTree, Requester } from '../../provisioning/tree.ts';
import * as P from './packet.ts';
import { ReadSession, WriteSession, bufferSource, fileSource, negotiate, type BlockSource } from './session.ts';
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
}

export interface TftpHandle {
  readonly address: AddressInfo;
  readonly sessions: () => number;
  close(): Promise<void>;
}

export async function startTftp(opts: TftpOptions, deps: { tree: ProvisioningTree; logger: Logger; firmwareLimiter?: TransferLimiter | undefined }): Promise<TftpHandle> {
  const { tree, logger } = deps;
  const family = isIPv6(opts.host) ? 'udp6' : 'udp4';
  const main = createSocket({ type: family, reuseAddr: false });
  const maxSessions = opts.maxSessions ?? 500;
  const defaults = { timeoutMs: opts.timeoutMs ?? 1000, maxBlksize: Math.min(opts.maxBlksize ?? 8192, 65464) };
  const live = new Set<{ abort(): void }>();
  let closing = false;

  const reply = (sock: Socket, to: RemoteInfo, buf: Buffer) => sock.send(buf, to.port, to.address, () => undefined);

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

    const sock = createSocket({ type: family });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, opts.host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    sock.on('error', (err) => logger.debug({ err }, 'tftp session socket error'));
    // Connected to the client's TID: the kernel filters other senders, and sends skip the lookup.
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
    const transport = {
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

    if (p.op === 'RRQ') {
      const r = await tree.read(requester, rel);
      if (r.kind !== 'file' && r.kind !== 'blob') {
        transport.send(r.kind === 'not_found' ? P.error(P.ERR.fileNotFound, 'file not found') : P.error(P.ERR.notDefined, 'not available yet, try again later'));
        transport.close();
        return;
      }
      let source: BlockSource;
      let release: () => void = () => undefined;
      if (r.kind === 'blob') {
        // Firmware: storm control, then blocks read from disk as they go out.
        const slot = deps.firmwareLimiter ? deps.firmwareLimiter.acquire(await tree.siteForAddress(tenant.id, ip)) : () => undefined;
        if (!slot) {
          transport.send(P.error(P.ERR.notDefined, 'server busy: too many firmware downloads, try again later'));
          transport.close();
          return;
        }
        let fd: number;
        try {
          fd = openSync(r.path, 'r');
        } catch {
          slot();
          transport.send(P.error(P.ERR.fileNotFound, 'file not found'));
          transport.close();
          return;
        }
        source = fileSource(fd, r.size);
        release = () => {
          slot();
          closeSync(fd);
        };
      } else {
        source = bufferSource(r.body);
      }
      const n = negotiate(p.options, source.length, defaults);
      const s = new ReadSession(transport, source, n, (end) => {
        live.delete(s);
        release();
        if (!end.ok) logger.info({ ip, file: rel, reason: end.reason }, 'tftp read ended early');
      });
      live.add(s);
      bindSession(sock, s);
      s.start();
      return;
    }

    const limit = tree.uploadLimit(rel);
    if (!limit) {
      transport.send(P.error(P.ERR.accessViolation, 'writing this file is not allowed'));
      transport.close();
      return;
    }
    const size = p.options.get('tsize');
    if (size !== undefined && /^\d+$/.test(size) && Number(size) > limit.maxBytes) {
      transport.send(P.error(P.ERR.diskFull, `upload larger than ${limit.maxBytes} bytes`));
      transport.close();
      return;
    }
    const n = negotiate(p.options, size !== undefined && /^\d+$/.test(size) ? Number(size) : undefined, defaults);
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
    bindSession(sock, w);
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
      resolve();
    });
  });

  let closed: Promise<void> | undefined;
  return {
    address: main.address(),
    sessions: () => live.size,
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
