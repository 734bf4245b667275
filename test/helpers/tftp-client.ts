import { createSocket } from 'node:dgram';
import * as assert from 'uvu/assert';
import * as P from '../../src/server/tftp/packet.ts';

/** A raw TFTP client on 127.0.0.1, for the cases real clients will not produce. */
export function rawClient(serverPort: number) {
  const sock = createSocket('udp4');
  const inbox: Array<{ p: P.Packet; port: number }> = [];
  const waiters: Array<() => void> = [];
  sock.on('message', (m, r) => {
    inbox.push({ p: P.parse(m), port: r.port });
    waiters.splice(0).forEach((w) => w());
  });
  // A send completes after the call returns: closing before it would drop the datagram.
  let pending = 0;
  let closeAsked: (() => void) | undefined;
  const sent = () => {
    if (--pending === 0) closeAsked?.();
  };
  return {
    send: (b: Buffer, to = serverPort) => {
      pending++;
      sock.send(b, to, '127.0.0.1', sent);
    },
    /** The next packet, or undefined after `timeoutMs` of silence. */
    next: async (timeoutMs = 10_000): Promise<{ p: P.Packet; port: number } | undefined> => {
      const deadline = Date.now() + timeoutMs;
      while (inbox.length === 0) {
        const left = deadline - Date.now();
        if (left <= 0) return undefined;
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      return inbox.shift();
    },
    /** The next packet; a test waiting for one that never comes fails, naming `what` it waited for. */
    async expect(what = 'a packet'): Promise<{ p: P.Packet; port: number }> {
      const got = await this.next();
      assert.ok(got, `${what}: a packet within 10 s`);
      return got!;
    },
    /** Closes once every datagram handed to `send` has gone out. */
    close: () =>
      new Promise<void>((resolve) => {
        closeAsked = () => sock.close(() => resolve());
        if (pending === 0) closeAsked();
      }),
  };
}

export type RawClient = ReturnType<typeof rawClient>;
