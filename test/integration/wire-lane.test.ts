import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WireConnection } from '../../src/server/http/wire.ts';
import { bootstrapAdmin, startServerWithTls } from '../helpers/app.ts';
import { RawHttp } from '../helpers/raw-http.ts';

// The phones' fast lane (src/server/http/wire.ts) on a real server: kept-alive, pipelined, split
// and malformed requests, and the hand-over to Node's HTTP server in the middle of a connection.

const s = await startServerWithTls();
const admin = await bootstrapAdmin(s);
const api = (method: string, path: string, body?: unknown) => s.call(method, `/api/v1${path}`, { token: admin, ...(body !== undefined && { body }) });
const tenant = (await api('POST', '/tenants', { name: 'Wire', settings: { allowBasicOverHttp: true } })).body;
const T = `/tenants/${tenant.id}`;
const MAC = '0004f2a1b2c3';
await api('POST', `${T}/devices`, { mac: MAC, model: 'VVX500', lines: [{ index: 1, address: '2001', authPassword: 'pw' }] });
const prov = (await api('GET', `${T}/provisioning`)).body;
const ca = s.app.tls!.caPem!;
const base = `/p/${tenant.provisioning.key}/`;
const auth = `Basic ${Buffer.from(`${prov.username}:${prov.password}`).toString('base64')}`;

test.after(async () => {
  await s.stop();
});

const get = (name: string, extra: string[] = [], method = 'GET') => [`${method} ${base}${name} HTTP/1.1`, 'Host: prov.test', `Authorization: ${auth}`, 'User-Agent: FileTransport PolycomVVX-VVX_500-UA/6.4.3.5018', ...extra, '', ''].join('\r\n');
const put = (name: string, body: string) =>
  [`PUT ${base}${name} HTTP/1.1`, 'Host: prov.test', `Authorization: ${auth}`, `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');

/** What a separate, ordinary client gets for a name: the reference every lane answer must match. */
async function reference(name: string): Promise<{ etag: string; body: string }> {
  const res = await fetch(`${s.base}${base}${name}`, { headers: { authorization: auth } });
  return { etag: res.headers.get('etag') ?? '', body: await res.text() };
}

for (const scheme of ['http', 'https'] as const) {
  test(`${scheme}: three pipelined GETs in one write are answered in order, each with its own request id`, async () => {
    const c = await RawHttp.open(scheme === 'http' ? s.base : s.httpsBase!, ca);
    const names = [`${MAC}.cfg`, `${MAC}-device.cfg`, 'defaults.cfg'];
    await c.send(names.map((n) => get(n)).join(''));
    const ids = new Set<string>();
    for (const n of names) {
      const r = await c.read();
      const want = await reference(n);
      assert.is(r.status, 200, n);
      assert.is(r.headers.etag, want.etag, n);
      assert.is(r.body.toString(), want.body, n);
      assert.is(r.headers['content-length'], String(r.body.length));
      assert.is(r.headers['cache-control'], 'no-cache');
      assert.is(r.headers.connection, 'keep-alive');
      assert.ok(r.headers.date && !Number.isNaN(Date.parse(r.headers.date)), 'a Date header');
      ids.add(r.headers['x-request-id'] ?? '');
    }
    assert.is(ids.size, 3);
    c.close();
  });
}

test('one connection: phone GET, upload PUT (handed to Node), GET again, an admin call — pipelined in one write', async () => {
  const c = await RawHttp.open(s.base);
  await c.send(get(`${MAC}.cfg`));
  assert.is((await c.read()).status, 200, 'in the lane');
  await c.send(put(`logs/${MAC}-app.log`, 'line one\n') + get(`${MAC}-device.cfg`) + 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' + get('defaults.cfg', ['X-Request-Id: mine-1']));
  assert.is((await c.read()).status, 204, 'the upload, answered by Node');
  const dev = await c.read();
  assert.is(dev.status, 200);
  assert.is(dev.body.toString(), (await reference(`${MAC}-device.cfg`)).body);
  const health = await c.read();
  assert.is(health.status, 200);
  assert.equal(JSON.parse(health.body.toString()), { status: 'ok' });
  const last = await c.read();
  assert.is(last.status, 200);
  assert.is(last.headers['x-request-id'], 'mine-1');
  c.close();
  const uploads = (await api('GET', `${T}/devices/${MAC}/uploads`)).body.items;
  assert.ok(uploads.some((u: { name: string }) => u.name === `${MAC}-app.log`), 'the upload was stored');
});

test('a client that pipelines 2,000 requests before reading any answer gets them all, in order', async () => {
  const c = await RawHttp.open(s.base);
  const names = [`${MAC}.cfg`, `${MAC}-device.cfg`, 'defaults.cfg', 'nothing-here.cfg'];
  const sent: string[] = [];
  let batch = '';
  for (let i = 0; i < 2000; i++) {
    const n = names[i % names.length] as string;
    sent.push(n);
    batch += get(n, [`X-Request-Id: p-${i}`]);
  }
  // Written without waiting: the server stops reading while its answers pile up unread.
  const writing = c.send(batch);
  for (let i = 0; i < sent.length; i++) {
    const r = await c.read();
    assert.is(r.headers['x-request-id'], `p-${i}`);
    assert.is(r.status, sent[i] === 'nothing-here.cfg' ? 404 : 200);
  }
  await writing;
  c.close();
});

test('a head split into single bytes is answered once complete', async () => {
  const c = await RawHttp.open(s.base);
  for (const byte of Buffer.from(get(`${MAC}.cfg`))) await c.send(Buffer.from([byte]));
  assert.is((await c.read()).status, 200);
  c.close();
});

test('HEAD has the headers and no body; a 304 has no body; the connection stays in step', async () => {
  const c = await RawHttp.open(s.base);
  const want = await reference(`${MAC}.cfg`);
  await c.send(get(`${MAC}.cfg`, [], 'HEAD') + get(`${MAC}.cfg`, [`If-None-Match: ${want.etag}`]) + get(`${MAC}.cfg`));
  const head = await c.read(true);
  assert.is(head.status, 200);
  assert.is(head.headers['content-length'], String(Buffer.byteLength(want.body)));
  assert.is(head.body.length, 0);
  const notModified = await c.read();
  assert.is(notModified.status, 304);
  assert.is(notModified.headers.etag, want.etag);
  const full = await c.read();
  assert.is(full.body.toString(), want.body);
  c.close();
});

test('answers that wait for the store keep their order: an unknown key, then a cached file', async () => {
  const c = await RawHttp.open(s.base);
  await c.send(get(`${MAC}.cfg`).replace(base, '/p/notatenantkey0001/') + get(`${MAC}.cfg`) + get('0004f2ffffff.cfg'));
  assert.is((await c.read()).status, 404);
  assert.is((await c.read()).status, 200);
  assert.is((await c.read()).status, 404, 'an unknown phone (recorded as pending)');
  c.close();
});

test('no credentials: 401 with every challenge on its own line; wrong ones: 401', async () => {
  const c = await RawHttp.open(s.httpsBase!, ca);
  await c.send(get(`${MAC}.cfg`).replace(/Authorization: [^\r]*\r\n/, '') + get(`${MAC}.cfg`).replace(auth, 'Basic d3Jvbmc6d3Jvbmc='));
  const none = await c.read();
  assert.is(none.status, 401);
  assert.ok((none.headers['www-authenticate'] ?? '').split('\n').length >= 3, 'SHA-256, MD5 and Basic challenges');
  assert.is((await c.read()).status, 401);
  c.close();
});

test('Connection: close is honoured: the answer says so and nothing pipelined after it is answered', async () => {
  const c = await RawHttp.open(s.base);
  await c.send(get(`${MAC}.cfg`, ['Connection: close']) + get('defaults.cfg'));
  const r = await c.read();
  assert.is(r.status, 200);
  assert.is(r.headers.connection, 'close');
  await c.closed;
  assert.is(c.leftover, 0);
});

test('a client that half-closes after its request gets the answer, then the close', async () => {
  const c = await RawHttp.open(s.base);
  c.socket.end(get(`${MAC}.cfg`));
  assert.is((await c.read()).status, 200);
  await c.closed;
});

test("malformed or unusual heads get Node's own answers", async () => {
  const cases: Array<[string, string, number]> = [
    ['a bare LF', `GET ${base}${MAC}.cfg HTTP/1.1\nHost: x\n\n`, 400],
    ['a header name with a space', `GET ${base}${MAC}.cfg HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n`, 400],
    ['no Host', `GET ${base}${MAC}.cfg HTTP/1.1\r\n\r\n`, 400],
    ['a head over 16 KB', get(`${MAC}.cfg`, [`X-Big: ${'a'.repeat(17_000)}`]), 431],
    ['a request line of garbage', '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\r\n\r\n', 400],
  ];
  for (const [why, bytes, status] of cases) {
    const c = await RawHttp.open(s.base);
    await c.send(bytes);
    assert.is((await c.read()).status, status, why);
    await c.closed;
  }
  // HTTP/1.0 and a GET with a body are fine HTTP; Node answers them.
  const old = await RawHttp.open(s.base);
  await old.send(get(`${MAC}.cfg`).replace('HTTP/1.1', 'HTTP/1.0'));
  assert.is((await old.read()).status, 200, 'HTTP/1.0');
  old.close();
  const withBody = await RawHttp.open(s.base);
  await withBody.send(get(`${MAC}.cfg`, ['Content-Length: 3']).replace(/\r\n\r\n$/, '\r\n\r\nabc') + get('defaults.cfg'));
  assert.is((await withBody.read()).status, 200);
  assert.is((await withBody.read()).status, 200, 'the body was not read as the next request');
  withBody.close();
});

/** A bare lane on a plain TCP listener, Node's HTTP server behind it, with short timeouts. */
async function lane(opts: { keepAliveMs: number; headersTimeoutMs: number }) {
  const node = createHttpServer((req, res) => res.end(`node:${req.method} ${req.url}`));
  const handOver = node.listeners('connection')[0] as (s: Socket) => void;
  const server = createNetServer({ allowHalfOpen: true }, (socket) => {
    new WireConnection(
      socket,
      {
        take: (ex) => {
          if (!ex.target.startsWith('/p/')) return false;
          ex.send(200, { 'Content-Length': '4' }, Buffer.from('lane'));
          return true;
        },
        handOver: (sock) => handOver.call(node, sock),
        ...opts,
      },
      false,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

test('the lane: a head that stops arriving is cut after the headers timeout; an idle connection after the keep-alive one', async () => {
  const l = await lane({ keepAliveMs: 300, headersTimeoutMs: 100 });
  const slow = await RawHttp.open(l.url);
  await slow.send('GET /p/x HTTP/1.1\r\nHo');
  await slow.closed;
  const idle = await RawHttp.open(l.url);
  await idle.send('GET /p/x HTTP/1.1\r\nHost: h\r\n\r\n');
  assert.is((await idle.read()).body.toString(), 'lane');
  await idle.closed;
  await l.close();
});

test('the lane: the hand-over gives Node every byte not yet answered, split or pipelined', async () => {
  const l = await lane({ keepAliveMs: 5000, headersTimeoutMs: 5000 });
  const c = await RawHttp.open(l.url);
  await c.send('GET /p/a HTTP/1.1\r\nHost: h\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\nGET /p/b HTT');
  await c.send('P/1.1\r\nHost: h\r\n\r\n');
  assert.is((await c.read()).body.toString(), 'lane');
  assert.is((await c.read()).body.toString(), 'node:GET /admin');
  assert.is((await c.read()).body.toString(), 'node:GET /p/b', 'Node keeps the connection from then on');
  c.close();
  await l.close();
});

test('the lane: a client that pipelines and does not read is not answered into memory without end', async () => {
  const body = Buffer.alloc(64 * 1024, 0x61);
  let taken = 0;
  let mostQueued = 0;
  let serverSide: Socket | undefined;
  const server = createNetServer((socket) => {
    serverSide = socket;
    new WireConnection(
      socket,
      {
        take: (ex) => {
          taken++;
          mostQueued = Math.max(mostQueued, socket.writableLength);
          ex.send(200, { 'Content-Length': String(body.length) }, body);
          return true;
        },
        handOver: () => socket.destroy(),
        keepAliveMs: 5000,
        headersTimeoutMs: 5000,
      },
      false,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const c = await RawHttp.open(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  c.socket.pause();
  const count = 400; // 25 MB of answers
  void c.send('GET /p/x HTTP/1.1\r\nHost: h\r\n\r\n'.repeat(count));
  // Poll until the lane has stopped reading: answers fill the kernel's buffers, then its own.
  while (!serverSide?.isPaused()) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(taken < count, `stopped after ${taken} of ${count}`);
  assert.ok(mostQueued <= 16 * 1024 + body.length, `at most one answer past the high-water mark was queued (${mostQueued} bytes)`);
  c.socket.resume();
  for (let i = 0; i < count; i++) assert.is((await c.read()).body.length, body.length);
  assert.is(taken, count);
  c.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test('stopping the server closes kept-alive lane connections at once, not after the grace period', async () => {
  const other = await startServerWithTls();
  const c = await RawHttp.open(other.base);
  await c.send('GET /p/unknownkey00000001/x.cfg HTTP/1.1\r\nHost: h\r\n\r\n');
  assert.is((await c.read()).status, 404);
  const started = performance.now();
  await other.stop();
  await c.closed;
  assert.ok(performance.now() - started < 1500, 'well inside the 2 s grace');
});

test.run();
