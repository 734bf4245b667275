import { readSync } from 'node:fs';
import * as P from './packet.ts';

/**
 * One TFTP transfer as a state machine over a two-method transport. Reads send blocks in windows
 * (RFC 7440) and retransmit from the last acknowledged block on timeout; duplicate ACKs are ignored
 * (no Sorcerer's Apprentice); writes collect DATA up to a size cap. Timers are owned and cleared.
 */
export interface Transport {
  send(buf: Buffer): void;
  close(): void;
}

export interface Negotiated {
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  /** Options to acknowledge in an OACK (empty: plain RFC 1350 transfer). */
  ack: Map<string, string>;
}

const DEFAULT_BLKSIZE = 512;
/** Retransmissions of one packet before a silent peer's transfer is given up. */
export const MAX_RETRIES = 5;

/**
 * Options a request asks for, clamped to what we serve (RFC 2347/2348/2349/7440). Unknown or
 * unparsable options are left out of the OACK, not refused — as tftpd-hpa does.
 */
export function negotiate(options: Map<string, string>, size: number | undefined, defaults: { timeoutMs: number; maxBlksize: number }): Negotiated {
  const ack = new Map<string, string>();
  let blksize = DEFAULT_BLKSIZE;
  let windowsize = 1;
  let timeoutMs = defaults.timeoutMs;
  const int = (v: string | undefined): number | undefined => (v !== undefined && /^\d{1,6}$/.test(v) ? Number(v) : undefined);
  const b = int(options.get('blksize'));
  if (b !== undefined && b >= 8) {
    blksize = Math.min(b, defaults.maxBlksize);
    ack.set('blksize', String(blksize));
  }
  const w = int(options.get('windowsize'));
  if (w !== undefined && w >= 1) {
    windowsize = Math.min(w, 64);
    ack.set('windowsize', String(windowsize));
  }
  const t = int(options.get('timeout'));
  if (t !== undefined && t >= 1 && t <= 255) {
    timeoutMs = t * 1000;
    ack.set('timeout', String(t));
  }
  if (options.has('tsize') && int(options.get('tsize')) !== undefined && size !== undefined) ack.set('tsize', String(size));
  return { blksize, windowsize, timeoutMs, ack };
}

export type SessionEnd = { ok: true } | { ok: false; reason: string };

/** What both kinds of transfer share: the retransmission timer, the retry count, one end. */
abstract class Transfer {
  protected done = false;
  protected retries = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    protected readonly t: Transport,
    protected readonly n: Negotiated,
    private readonly onEnd: (end: SessionEnd) => void,
  ) {}

  /** What to (re)send when the peer has been silent for a timeout. */
  protected abstract onTimeout(): void;

  /**
   * (Re)starts the retransmission timer. Called for every packet, so it only notes the time: one
   * timer per session fires and, if the peer was heard from since, sleeps again for the rest.
   */
  protected arm(): void {
    this.#deadline = performance.now() + this.n.timeoutMs;
    this.#timer ??= setTimeout(this.#onTimer, this.n.timeoutMs);
  }

  #deadline = 0;
  readonly #onTimer = (): void => {
    this.#timer = undefined;
    if (this.done || this.#deadline === 0) return;
    const left = this.#deadline - performance.now();
    if (left > 1) {
      this.#timer = setTimeout(this.#onTimer, left);
      return;
    }
    this.onTimeout();
  };

  protected stopTimer(): void {
    this.#deadline = 0;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  protected finish(end: SessionEnd): void {
    this.done = true;
    this.stopTimer();
    this.t.close();
    this.onEnd(end);
  }

  /** Ends the transfer at once (server shutdown). */
  abort(): void {
    if (!this.done) this.finish({ ok: false, reason: 'server closing' });
  }
}

/** What a read sends: bytes in memory (rendered files) or a file on disk (firmware). */
export interface BlockSource {
  readonly length: number;
  /** Copies bytes `from`..`to` into `into` at `offset`; returns how many. */
  readInto(into: Buffer, offset: number, from: number, to: number): number;
}

export const bufferSource = (b: Buffer): BlockSource => ({ length: b.length, readInto: (into, offset, from, to) => b.copy(into, offset, from, to) });

/**
 * An open file of `size` bytes, read ahead 256 KB at a time: one syscall per ~180 blocks of 1468
 * bytes instead of one per block, and never the whole image in memory.
 */
export function fileSource(fd: number, size: number): BlockSource {
  const ahead = Buffer.allocUnsafe(256 * 1024);
  let aheadFrom = -1;
  let aheadLen = 0;
  return {
    length: size,
    readInto(into, offset, from, to) {
      if (aheadFrom < 0 || from < aheadFrom || to > aheadFrom + aheadLen) {
        aheadLen = readSync(fd, ahead, 0, ahead.length, from);
        aheadFrom = from;
      }
      const start = from - aheadFrom;
      const end = Math.min(to - aheadFrom, aheadLen);
      return end > start ? ahead.copy(into, offset, start, end) : 0;
    },
  };
}

/** Sends `body` to one client. */
export class ReadSession extends Transfer {
  #acked = 0; // highest block the client confirmed (0 = none, or the OACK)
  #sent = 0;
  /** After an OACK, the client's ACK of block 0 starts the data (RFC 2347). */
  #awaitingOackAck = false;
  readonly #blocks: number;

  constructor(
    t: Transport,
    private readonly body: BlockSource,
    n: Negotiated,
    onEnd: (end: SessionEnd) => void,
  ) {
    super(t, n, onEnd);
    // A file that is an exact multiple of blksize ends with an empty block.
    this.#blocks = Math.floor(body.length / n.blksize) + 1;
  }

  start(): void {
    if (this.n.ack.size > 0) {
      this.#awaitingOackAck = true;
      this.t.send(P.oack(this.n.ack));
      this.arm();
    } else {
      this.#sendWindow();
    }
  }

  /** DATA packet `i`, the bytes read straight into it. */
  #block(i: number): Buffer {
    const from = (i - 1) * this.n.blksize;
    const to = Math.min(from + this.n.blksize, this.body.length);
    return P.dataInto(i, to - from, (b, offset) => this.body.readInto(b, offset, from, to));
  }

  #sendWindow(): void {
    const last = Math.min(this.#acked + this.n.windowsize, this.#blocks);
    for (let i = this.#acked + 1; i <= last; i++) this.t.send(this.#block(i));
    this.#sent = last;
    this.arm();
  }

  protected onTimeout(): void {
    if (++this.retries > MAX_RETRIES) return this.finish({ ok: false, reason: 'client stopped answering' });
    if (this.#awaitingOackAck) {
      this.t.send(P.oack(this.n.ack));
      this.arm();
    } else {
      this.#sendWindow();
    }
  }

  /** A packet from the client's TID. */
  onPacket(p: P.Packet): void {
    if (this.done) return;
    if (p.op === 'ERROR') return this.finish({ ok: false, reason: `client error ${p.code}: ${p.message}` });
    if (p.op !== 'ACK') {
      this.t.send(P.error(P.ERR.illegalOperation, 'expected ACK'));
      return this.finish({ ok: false, reason: `unexpected ${p.op}` });
    }
    this.onAck(p.block);
  }

  /** An ACK of `block` (16 bits on the wire); the socket calls this directly for the hot path. */
  onAck(block: number): void {
    if (this.done) return;
    if (this.#awaitingOackAck) {
      if (block !== 0) return;
      this.#awaitingOackAck = false;
      this.retries = 0;
      return this.#sendWindow();
    }
    // Block numbers wrap at 65536; map the 16-bit ACK onto the window we sent.
    const base = this.#acked;
    const delta = (block - (base & 0xffff) + 0x10000) & 0xffff;
    if (delta === 0 || base + delta > this.#sent) return; // duplicate or stale ACK: ignore
    this.#acked = base + delta;
    this.retries = 0;
    if (this.#acked >= this.#blocks) return this.finish({ ok: true });
    if (this.#acked === this.#sent) this.#sendWindow();
    else this.arm();
  }
}

/**
 * Receives one upload, up to `maxBytes`. The last block is acknowledged only once `commit` has
 * stored the file, so a client that sees the final ACK knows it was kept; a refusal becomes an
 * ERROR packet instead.
 */
export class WriteSession extends Transfer {
  #expect = 1;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(
    t: Transport,
    n: Negotiated,
    private readonly maxBytes: number,
    private readonly commit: (body: Buffer) => Promise<string | undefined>,
    onEnd: (end: SessionEnd) => void,
  ) {
    super(t, n, onEnd);
  }

  start(): void {
    this.t.send(this.n.ack.size > 0 ? P.oack(this.n.ack) : P.ack(0));
    this.arm();
  }

  protected onTimeout(): void {
    if (++this.retries > MAX_RETRIES) return this.finish({ ok: false, reason: 'client stopped sending' });
    this.t.send(this.#expect === 1 && this.n.ack.size > 0 ? P.oack(this.n.ack) : P.ack(this.#expect - 1));
    this.arm();
  }

  onPacket(p: P.Packet): void {
    if (this.done) return;
    if (p.op === 'ERROR') return this.finish({ ok: false, reason: `client error ${p.code}` });
    if (p.op !== 'DATA') {
      this.t.send(P.error(P.ERR.illegalOperation, 'expected DATA'));
      return this.finish({ ok: false, reason: `unexpected ${p.op}` });
    }
    if (p.block !== (this.#expect & 0xffff)) {
      this.t.send(P.ack((this.#expect - 1) & 0xffff)); // re-acknowledge what we have
      return;
    }
    if (p.data.length > this.n.blksize) {
      this.t.send(P.error(P.ERR.illegalOperation, 'block larger than negotiated'));
      return this.finish({ ok: false, reason: 'oversize block' });
    }
    this.#size += p.data.length;
    if (this.#size > this.maxBytes) {
      this.t.send(P.error(P.ERR.diskFull, `upload larger than ${this.maxBytes} bytes`));
      return this.finish({ ok: false, reason: 'too large' });
    }
    this.#chunks.push(Buffer.from(p.data));
    this.#expect++;
    this.retries = 0;
    if (p.data.length < this.n.blksize) {
      this.stopTimer();
      this.done = true;
      const block = p.block;
      this.commit(Buffer.concat(this.#chunks, this.#size)).then(
        (refusal) => {
          this.t.send(refusal ? P.error(P.ERR.accessViolation, refusal) : P.ack(block));
          this.finish(refusal ? { ok: false, reason: refusal } : { ok: true });
        },
        () => {
          this.t.send(P.error(P.ERR.notDefined, 'could not store the file'));
          this.finish({ ok: false, reason: 'store failed' });
        },
      );
      return;
    }
    this.t.send(P.ack(p.block));
    this.arm();
  }
}
