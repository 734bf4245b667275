import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

/**
 * The phones' fast lane on a kept-alive connection. Node's HTTP machinery (parser callbacks,
 * request and response objects, header bookkeeping) costs more per request than everything a
 * phone's request needs from edgeprov, so a connection starts here: requests whose head is plain
 * HTTP/1.1 — GET or HEAD, no body, every line well-formed, each header that matters given once —
 * are read and answered on the socket directly. Anything else, the first time it appears (an
 * upload, an admin call, HTTP/1.0, a body, a folded or malformed line, an oversized head …), hands
 * the connection with every byte not yet answered to Node's own HTTP server for good, which then
 * answers as it always does, 400s included. This lane never answers what it did not fully parse,
 * and it is stricter than Node's parser everywhere, so the two cannot read one request differently.
 */

/** One request head this lane takes. Everything else about the request is in `target`. */
export interface WireHead {
  method: 'GET' | 'HEAD';
  /** The request target exactly as sent (origin form). */
  target: string;
  authorization: string | undefined;
  ifNoneMatch: string | undefined;
  userAgent: string | undefined;
  requestId: string | undefined;
  /** The client asked for `Connection: close`. */
  close: boolean;
}

/** Node's default cap on a request head (`--max-http-header-size`). */
export const MAX_HEAD = 16_384;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Anything but visible ASCII, space and tab, or a CR or LF not part of a CRLF pair. */
const UNSAFE = /[^\t\r\n\x20-\x7e]|\r(?!\n)|(?<!\r)\n/;
/** Headers that mean a body, a protocol switch or an interim answer: Node's business. */
const REFUSED = new Set(['content-length', 'transfer-encoding', 'expect', 'upgrade', 'http2-settings']);

/** The headers the phone path reads, by lower-case name, and where the head keeps them. */
const READ = new Map<string, 'authorization' | 'ifNoneMatch' | 'userAgent' | 'requestId'>([
  ['authorization', 'authorization'],
  ['if-none-match', 'ifNoneMatch'],
  ['user-agent', 'userAgent'],
  ['x-request-id', 'requestId'],
]);

/** Header names as phones and clients spell them, already lower-cased: most heads need no toLowerCase. */
const LOWER = new Map<string, string>(
  ['Host', 'Authorization', 'If-None-Match', 'User-Agent', 'X-Request-Id', 'Connection', 'Accept', 'Accept-Encoding'].flatMap((n): Array<[string, string]> => [
    [n, n.toLowerCase()],
    [n.toLowerCase(), n.toLowerCase()],
  ]),
);

const UNSAFE_FROM = new RegExp(UNSAFE.source, 'g');

/**
 * Whether the part of a head that is still arriving holds, from `from` on, a byte that rules the
 * lane out (a trailing CR may yet be followed by its LF). Each byte is looked at once however
 * thinly the head is sliced.
 */
function unsafeFrom(text: string, from: number): boolean {
  UNSAFE_FROM.lastIndex = from;
  const m = UNSAFE_FROM.exec(text);
  return m !== null && !(m.index === text.length - 1 && text.charCodeAt(m.index) === 13);
}

/**
 * The head in `text[0, end)` (without its final CRLF CRLF), or `undefined` when this lane does not
 * take it and Node's parser must see it.
 */
export function parseWireHead(text: string, end: number): WireHead | undefined {
  const head = end === text.length ? text : text.slice(0, end);
  if (UNSAFE.test(head)) return undefined;
  const first = head.indexOf('\r\n');
  if (first < 0) return undefined; // no Host header
  const line = head.slice(0, first);
  let method: 'GET' | 'HEAD';
  let from: number;
  if (line.startsWith('GET /')) {
    method = 'GET';
    from = 4;
  } else if (line.startsWith('HEAD /')) {
    method = 'HEAD';
    from = 5;
  } else {
    return undefined;
  }
  if (!line.endsWith(' HTTP/1.1')) return undefined;
  const target = line.slice(from, line.length - 9);
  if (target.includes(' ')) return undefined;

  const out: WireHead = { method, target, authorization: undefined, ifNoneMatch: undefined, userAgent: undefined, requestId: undefined, close: false };
  let hosts = 0;
  let connection = false;
  let pos = first + 2;
  while (pos < head.length) {
    let eol = head.indexOf('\r\n', pos);
    if (eol < 0) eol = head.length;
    const colon = head.indexOf(':', pos);
    if (colon <= pos || colon > eol) return undefined;
    const name = head.slice(pos, colon);
    if (!TOKEN.test(name)) return undefined; // also a folded line, which starts with a space
    const value = head.slice(colon + 1, eol).trim();
    pos = eol + 2;
    const lower = LOWER.get(name) ?? name.toLowerCase();
    const field = READ.get(lower);
    if (field !== undefined) {
      if (out[field] !== undefined) return undefined; // given twice: Node's rules decide
      out[field] = value;
    } else if (lower === 'host') {
      if (++hosts > 1) return undefined;
    } else if (lower === 'connection') {
      if (connection) return undefined;
      connection = true;
      const v = value.toLowerCase();
      if (v === 'close') out.close = true;
      else if (v !== 'keep-alive') return undefined;
    } else if (REFUSED.has(lower)) {
      return undefined;
    }
  }
  return hosts === 1 ? out : undefined;
}

/** A request this lane read, and the way back to the phone (a `PhoneExchange` of `device-routes.ts`). */
export class WireExchange {
  status = 0;
  sent = false;
  requestId = '';
  readonly node = undefined;
  constructor(
    readonly head: WireHead,
    readonly ip: string,
    readonly secure: boolean,
    private readonly conn: WireConnection,
  ) {}
  get method(): string {
    return this.head.method;
  }
  get target(): string {
    return this.head.target;
  }
  get authorization(): string | undefined {
    return this.head.authorization;
  }
  get ifNoneMatch(): string | undefined {
    return this.head.ifNoneMatch;
  }
  get userAgent(): string | undefined {
    return this.head.userAgent;
  }
  get givenRequestId(): string | undefined {
    return this.head.requestId;
  }
  /** Sends the whole answer; the connection then reads the next request. */
  send(status: number, headers: Record<string, string | string[]>, body?: Buffer): void {
    if (this.sent) return;
    this.sent = true;
    this.status = status;
    this.conn.answer(this, status, headers, body);
  }
  /** Cuts the connection (an answer can no longer be sent). */
  destroy(): void {
    this.sent = true;
    this.conn.socket.destroy();
  }
}

export interface WireOptions {
  /** Takes a request (and answers it, now or later) or returns false, having touched nothing. */
  take(ex: WireExchange): boolean;
  /** Node's connection listener: the rest of the connection is its. */
  handOver(socket: Socket): void;
  keepAliveMs: number;
  headersTimeoutMs: number;
}

let dateSecond = 0;
let dateLine = '';
/** The `Date` header line, formatted once a second. */
function date(): string {
  const s = Math.floor(Date.now() / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateLine = `Date: ${new Date(s * 1000).toUTCString()}\r\n`;
  }
  return dateLine;
}

/** One client connection while this lane owns it. */
export class WireConnection {
  /** Bytes received and not yet answered, as latin1 (one char per byte). */
  #pending = '';
  #busy = false;
  /** Answers are piling up unread: the client reads them before more requests are taken. */
  #draining = false;
  #inPump = false;
  /** Close after the answer in hand: the server is shutting down. */
  #closing = false;
  /** The client half-closed: answer what it sent in full, then close. */
  #clientEnded = false;
  #handedOver = false;
  #headSince = 0;
  /** How much of a head still arriving has been looked at. */
  #scanned = 0;
  readonly #ip: string;
  readonly #secure: boolean;
  readonly #keepAlive: string;
  readonly #onData = (chunk: Buffer) => this.#read(chunk);
  readonly #onEnd = () => this.#ended();
  readonly #onTimeout = () => this.socket.destroy();
  readonly #onError = () => this.socket.destroy();

  constructor(
    readonly socket: Socket,
    private readonly opts: WireOptions,
    secure: boolean,
  ) {
    const raw = socket.remoteAddress ?? '';
    this.#ip = raw.startsWith('::ffff:') ? raw.slice(7) : raw;
    this.#secure = secure;
    this.#keepAlive = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(opts.keepAliveMs / 1000)}\r\n\r\n`;
    socket.setNoDelay(true);
    socket.setTimeout(opts.keepAliveMs);
    socket.on('timeout', this.#onTimeout);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('data', this.#onData);
  }

  /** Ends the connection now if no answer is pending, else right after that answer. */
  closeWhenIdle(): void {
    if (this.#handedOver) return;
    this.#closing = true;
    if (!this.#busy) this.socket.end();
  }

  #read(chunk: Buffer): void {
    this.#pending = this.#pending.length === 0 ? chunk.toString('latin1') : this.#pending + chunk.toString('latin1');
    if (this.#busy || this.#draining) {
      // One request at a time: a client pipelining behind a slow answer waits in the kernel.
      this.socket.pause();
      return;
    }
    this.#pump();
  }

  #ended(): void {
    // The client sent all it will send: answer what was fully received, then close.
    this.#clientEnded = true;
    if (!this.#busy) this.#pump();
  }

  #pump(): void {
    if (this.#inPump) return;
    this.#inPump = true;
    try {
      while (!this.#busy && !this.#handedOver && this.#pending.length > 0 && !this.socket.destroyed) {
        if (this.socket.writableNeedDrain) return this.#awaitDrain();
        const end = this.#pending.indexOf('\r\n\r\n', this.#scanned > 3 ? this.#scanned - 3 : 0);
        if (end < 0 || end + 4 > MAX_HEAD) {
          if (this.#pending.length > MAX_HEAD || end >= 0) return this.#handOver();
          // Half a head: Node decides at once about one that can no longer be this lane's (a bare
          // LF, a control byte), which would otherwise wait here for a blank line never sent.
          if (unsafeFrom(this.#pending, this.#scanned)) return this.#handOver();
          this.#scanned = this.#pending.endsWith('\r') ? this.#pending.length - 1 : this.#pending.length;
          this.#partial();
          return;
        }
        this.#scanned = 0;
        if (this.#headSince !== 0) {
          this.#headSince = 0;
          this.socket.setTimeout(this.opts.keepAliveMs);
        }
        const head = parseWireHead(this.#pending, end);
        if (!head) return this.#handOver();
        const ex = new WireExchange(head, this.#ip, this.#secure, this);
        if (!this.opts.take(ex)) return this.#handOver();
        this.#pending = this.#pending.length === end + 4 ? '' : this.#pending.slice(end + 4);
        if (!ex.sent) this.#busy = true;
      }
    } finally {
      this.#inPump = false;
    }
    // Nothing in hand, and at most half a head left that nobody will finish.
    if ((this.#closing || this.#clientEnded) && !this.#busy && !this.#draining && !this.#handedOver && !this.socket.destroyed) this.socket.end();
  }

  /** A client that pipelines and does not read gets no more answers until it does. */
  #awaitDrain(): void {
    if (this.#draining) return;
    this.#draining = true;
    this.socket.pause();
    this.socket.once('drain', () => {
      this.#draining = false;
      this.socket.resume();
      this.#pump();
    });
  }

  /** A head is still arriving: it has `headersTimeoutMs` from its first byte, as in Node. */
  #partial(): void {
    const now = Date.now();
    if (this.#headSince === 0) {
      this.#headSince = now;
      this.socket.setTimeout(this.opts.headersTimeoutMs);
    } else if (now - this.#headSince > this.opts.headersTimeoutMs) {
      this.socket.destroy();
    }
  }

  answer(ex: WireExchange, status: number, headers: Record<string, string | string[]>, body: Buffer | undefined): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    for (const name in headers) {
      const v = headers[name] as string | string[];
      if (typeof v === 'string') head += `${name}: ${v}\r\n`;
      else for (const one of v) head += `${name}: ${one}\r\n`;
    }
    const close = this.#closing || ex.head.close;
    head += date();
    head += close ? 'Connection: close\r\n\r\n' : this.#keepAlive;
    const payload = ex.head.method === 'HEAD' || body === undefined ? undefined : body;
    if (payload === undefined || payload.length === 0) {
      socket.write(head, 'latin1');
    } else {
      // One buffer, one send: the head and a config file together are a few kilobytes.
      const out = Buffer.allocUnsafe(head.length + payload.length);
      out.write(head, 0, 'latin1');
      payload.copy(out, head.length);
      socket.write(out);
    }
    const wasBusy = this.#busy;
    this.#busy = false;
    if (close) {
      // Whatever the client pipelined after this is not answered (RFC 9112 §9.6).
      this.#pending = '';
      socket.end();
      return;
    }
    if (wasBusy) {
      socket.resume();
      this.#pump();
    }
  }

  #handOver(): void {
    this.#handedOver = true;
    const socket = this.socket;
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('timeout', this.#onTimeout);
    socket.off('error', this.#onError);
    socket.setTimeout(0);
    const rest = this.#pending;
    this.#pending = '';
    if (rest.length > 0) socket.unshift(Buffer.from(rest, 'latin1'));
    this.opts.handOver(socket);
  }
}
