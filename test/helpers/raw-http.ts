import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface RawResponse {
  status: number;
  /** Header names lower-cased; repeated ones joined with `\n`. */
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * One HTTP/1.1 connection driven byte by byte: requests are written exactly as given (pipelined,
 * split, malformed), and answers are read back in order.
 */
export class RawHttp {
  #buf = Buffer.alloc(0);
  #ended = false;
  #waiters: Array<() => void> = [];
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#wake();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.#ended = true;
        this.#wake();
        resolve();
      });
    });
    socket.on('error', () => undefined);
  }

  static open(url: string, ca?: string): Promise<RawHttp> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const socket =
        u.protocol === 'https:'
          ? tlsConnect({ host: u.hostname, port: Number(u.port), ...(ca ? { ca } : { rejectUnauthorized: false }), servername: 'localhost' }, () => resolve(new RawHttp(socket)))
          : tcpConnect(Number(u.port), u.hostname, () => resolve(new RawHttp(socket)));
      socket.once('error', reject);
    });
  }

  /** Writes bytes and waits until they are handed to the kernel. */
  send(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async #more(): Promise<boolean> {
    if (this.#ended) return false;
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return true;
  }

  /** The next answer; `bodiless` for the answer to a HEAD. Rejects if the connection closes first. */
  async read(bodiless = false): Promise<RawResponse> {
    let end: number;
    while ((end = this.#buf.indexOf('\r\n\r\n')) < 0) {
      if (!(await this.#more())) throw new Error(`connection closed before an answer (${this.#buf.length} bytes left)`);
    }
    const lines = this.#buf.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0] ?? '')?.[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      const name = line.slice(0, c).toLowerCase();
      const value = line.slice(c + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}\n${value}`;
    }
    this.#buf = this.#buf.subarray(end + 4);
    let length: number | undefined = bodiless || status === 304 || status === 204 ? 0 : headers['content-length'] !== undefined ? Number(headers['content-length']) : undefined;
    if (length === undefined) {
      while (await this.#more());
      length = this.#buf.length; // read to the close
    }
    while (this.#buf.length < length) {
      if (!(await this.#more())) throw new Error('connection closed inside a body');
    }
    const body = Buffer.from(this.#buf.subarray(0, length));
    this.#buf = this.#buf.subarray(length);
    return { status, headers, body };
  }

  /** Bytes received and not read as an answer. */
  get leftover(): number {
    return this.#buf.length;
  }

  close(): void {
    this.socket.destroy();
  }
}
