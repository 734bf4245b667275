import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Blob } from '../../provisioning/tree.ts';

/**
 * Serves a file from disk the way firmware downloads need it (RFC 9110): exact Content-Length,
 * strong ETag, HEAD, If-None-Match, If-Range, single ranges (206), several ranges
 * (multipart/byteranges), unsatisfiable ones (416). Streamed with backpressure: a slow phone
 * holds a file handle, never the file in memory.
 */

export type ByteRange = { start: number; end: number };

/** Read size for streaming: large reads mean few syscalls and event-loop turns per image. */
const CHUNK = 1024 * 1024;

/** The ranges of a `Range` header for a file of `size` bytes: `null` = serve whole, `'unsatisfiable'` = 416. */
export function parseRange(header: string | undefined, size: number): ByteRange[] | null | 'unsatisfiable' {
  if (!header) return null;
  const m = /^bytes=(.+)$/i.exec(header.trim());
  if (!m?.[1]) return null; // another unit: ignore the header (RFC 9110 §14.2)
  const specs = m[1].split(',').map((s) => s.trim());
  if (specs.length > 16) return null; // many small ranges are an attack, not a download
  const out: ByteRange[] = [];
  for (const spec of specs) {
    const r = /^(\d{0,15})-(\d{0,15})$/.exec(spec);
    if (!r) return null; // malformed: ignore, serve whole
    const [, a = '', b = ''] = r;
    if (a === '' && b === '') return null;
    let start: number;
    let end: number;
    if (a === '') {
      const suffix = Number(b);
      if (suffix === 0) continue;
      start = Math.max(0, size - suffix);
      end = size - 1;
    } else {
      start = Number(a);
      end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
      if (b !== '' && Number(b) < start) return null;
    }
    if (start >= size || size === 0) continue;
    out.push({ start, end });
  }
  if (out.length === 0) return 'unsatisfiable';
  // Overlapping or adjacent ranges are merged (RFC 9110 allows it, and it bounds the work).
  out.sort((x, y) => x.start - y.start);
  const merged: ByteRange[] = [];
  for (const r of out) {
    const last = merged[merged.length - 1];
    if (last && r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
    else merged.push({ ...r });
  }
  return merged;
}

export async function serveBlob(req: IncomingMessage, res: ServerResponse, blob: Blob, extra: Record<string, string> = {}): Promise<void> {
  const headers: Record<string, string> = { ETag: blob.etag, 'Accept-Ranges': 'bytes', 'Cache-Control': 'no-cache', ...extra };
  const inm = req.headers['if-none-match'];
  if (inm && inm.split(',').some((t) => t.trim() === blob.etag || t.trim() === '*')) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const ifRange = req.headers['if-range'];
  let ranges = parseRange(req.headers.range, blob.size);
  if (ifRange !== undefined && ifRange !== blob.etag) ranges = null; // changed since: send it whole
  if (ranges === 'unsatisfiable') {
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${blob.size}`, 'Content-Length': '0' });
    res.end();
    return;
  }
  const head = req.method === 'HEAD';
  if (ranges === null) {
    res.writeHead(200, { ...headers, 'Content-Type': blob.contentType, 'Content-Length': String(blob.size) });
    if (head) return void res.end();
    await sendFile(blob.path, res, [{ start: 0, end: blob.size - 1 }]);
    res.end();
    return;
  }
  if (ranges.length === 1) {
    const r = ranges[0] as ByteRange;
    res.writeHead(206, { ...headers, 'Content-Type': blob.contentType, 'Content-Range': `bytes ${r.start}-${r.end}/${blob.size}`, 'Content-Length': String(r.end - r.start + 1) });
    if (head) return void res.end();
    await sendFile(blob.path, res, [r]);
    res.end();
    return;
  }
  const boundary = randomBytes(12).toString('hex');
  const partHead = (r: ByteRange) => Buffer.from(`\r\n--${boundary}\r\nContent-Type: ${blob.contentType}\r\nContent-Range: bytes ${r.start}-${r.end}/${blob.size}\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const length = ranges.reduce((n, r) => n + partHead(r).length + (r.end - r.start + 1), 0) + tail.length;
  res.writeHead(206, { ...headers, 'Content-Type': `multipart/byteranges; boundary=${boundary}`, 'Content-Length': String(length) });
  if (head) return void res.end();
  await sendFile(blob.path, res, ranges, partHead);
  res.end(tail);
}

/**
 * Writes byte ranges of a file to the response through two buffers used in turn: one is read
 * into while the other is on its way to the phone, and neither is reused before the socket has
 * taken it. A download allocates nothing per read (a fresh 1 MB buffer per read made the garbage
 * collector the bottleneck) and holds at most two chunks, however slow the phone.
 */
async function sendFile(path: string, res: ServerResponse, ranges: ByteRange[], partHead?: (r: ByteRange) => Buffer): Promise<void> {
  const fh = await open(path, 'r');
  const closed = new Promise<never>((_, fail) => res.once('close', () => fail(new Error('the client went away'))));
  closed.catch(() => undefined);
  const send = (chunk: Buffer) => {
    const p = Promise.race([
      new Promise<void>((ok, fail) => {
        res.write(chunk, (err) => (err ? fail(err) : ok()));
      }),
      closed,
    ]);
    // Awaited before the next write; a phone that leaves during a read must not go unhandled meanwhile.
    p.catch(() => undefined);
    return p;
  };
  try {
    const bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
    let turn = 0;
    let inFlight: Promise<void> = Promise.resolve();
    for (const r of ranges) {
      if (partHead) {
        await inFlight;
        inFlight = send(partHead(r));
      }
      for (let pos = r.start; pos <= r.end; ) {
        // This buffer's previous write was awaited before the write that followed it was issued.
        const buf = bufs[turn] as Buffer;
        turn ^= 1;
        const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, r.end - pos + 1), pos);
        if (bytesRead === 0) throw new Error(`${path} is shorter than its catalogue entry`);
        await inFlight;
        inFlight = send(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
    }
    await inFlight;
  } finally {
    await fh.close();
  }
}
