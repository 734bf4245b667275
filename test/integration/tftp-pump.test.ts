import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as P from '../../src/server/tftp/packet.ts';
import { bootstrapAdmin, startServer, type TestServer } from '../helpers/app.ts';
import { rawClient, type RawClient } from '../helpers/tftp-client.ts';
import { haveTool } from '../helpers/tools.ts';

/**
 * Firmware over TFTP from both senders: the native pump (native/tftp_pump.c, a thread per
 * download) and the event loop's ReadSession (`tftp-pump: javascript`). Same bytes with the real
 * clients, block numbers wrapping, the empty last block, hostile packets on the transfer's own
 * port, a client that vanishes (the session and its firmware slot are freed), and a server that
 * closes mid-transfer.
 */
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'edgeprov-pump-'));
const PART = '3111-48500-001';
const image = randomBytes(1024 * 1024 + 13);
const exact = randomBytes(8 * 512); // a multiple of the block size: ends with an empty block
const wraps = randomBytes(600_000); // 75,000 blocks of 8 bytes: the block number wraps

async function server(pump: 'auto' | 'javascript'): Promise<TestServer> {
  const s = await startServer({ 'tftp-enabled': 'true', 'tftp-port': '0', 'tftp-pump': pump, 'firmware-max-concurrent': '1' });
  const admin = await bootstrapAdmin(s);
  const put = async (version: string, body: Buffer) => {
    const r = await fetch(`${s.base}/api/v1/firmware/${version}/images/${PART}.sip.ld`, { method: 'PUT', headers: { authorization: `Bearer ${admin}` }, body });
    assert.is(r.status, 201, await r.text());
  };
  await put('1.0.0.1', image);
  await put('1.0.0.2', exact);
  await put('1.0.0.3', wraps);
  const tenant = (await s.call('POST', '/api/v1/tenants', { token: admin, body: { name: `Pump ${pump}` } })).body;
  await s.call('POST', `/api/v1/tenants/${tenant.id}/sites`, { token: admin, body: { name: 'Loop', subnets: ['127.0.0.0/8'] } });
  return s;
}

const servers = { native: await server('auto'), javascript: await server('javascript') };
const both = (Object.entries(servers) as Array<[string, TestServer]>).filter(([n]) => !process.env.ONLY || n === process.env.ONLY);
const fw = (version: string) => `fw/${version}/${PART}.sip.ld`;

test.after(async () => {
  for (const [, s] of both) await s.stop();
  rmSync(dir, { recursive: true, force: true });
});


/** Polls until the server has no transfer left (each poll waits for the next turn of the loop). */
async function sessionsDrain(s: TestServer, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while ((s.tftp?.sessions() ?? 0) > 0) {
    assert.ok(Date.now() < deadline, `sessions left: ${s.tftp?.sessions()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A download with a raw client: OACK, then windows of `windowsize` blocks, each ACKed once;
 * `noise(block, port)` runs before every ACK.
 */
async function download(c: RawClient, name: string, opts: Record<string, string>, noise?: (block: number, port: number) => void): Promise<Buffer> {
  c.send(P.request('RRQ', name, opts));
  const o = await c.expect('OACK');
  assert.is(o.p.op, 'OACK', JSON.stringify(o.p));
  const blksize = Number((o.p as { options: Map<string, string> }).options.get('blksize') ?? 512);
  const window = Number((o.p as { options: Map<string, string> }).options.get('windowsize') ?? 1);
  c.send(P.ack(0), o.port);
  const got: Buffer[] = [];
  let block = 0; // blocks received in order, not wrapped
  for (;;) {
    const d = await c.expect(`block ${block + 1}`);
    assert.is(d.p.op, 'DATA', JSON.stringify(d.p));
    const data = d.p as { block: number; data: Buffer };
    if (data.block !== ((block + 1) & 0xffff)) continue; // a retransmission
    block++;
    got.push(data.data);
    const last = data.data.length < blksize;
    if (last || block % window === 0) {
      noise?.(block, o.port);
      c.send(P.ack(block & 0xffff), o.port);
    }
    if (last) return Buffer.concat(got);
  }
}

test('the native pump is built and chosen; `tftp-pump: javascript` keeps the event loop', () => {
  assert.is(servers.javascript.tftp?.pump, 'javascript');
  const unavailable = servers.native.tftp?.pumpUnavailable;
  if (unavailable) {
    if (process.env.EDGEPROV_TEST_STRICT === '1') assert.unreachable(`native TFTP pump: ${unavailable}`);
    process.stdout.write(`\n  SKIP native TFTP pump: ${unavailable}; its server falls back to the event loop\n`);
    return;
  }
  assert.is(servers.native.tftp?.pump, 'native');
});

test('atftp (lock-step and windowsize 16) and tftp-hpa get the same image from both senders', async () => {
  const atftp = haveTool('atftp', 'firmware over TFTP with atftp');
  const hpa = haveTool('tftp', 'firmware over TFTP with tftp-hpa');
  for (const [name, s] of both) {
    const port = String(s.tftpPort);
    const out = join(dir, `${name}-out`);
    const runs: Array<[string, string[]]> = [];
    if (atftp) {
      runs.push(['atftp', ['--option', 'blksize 1468', '-g', '-r', fw('1.0.0.1'), '-l', out, '127.0.0.1', port]]);
      runs.push(['atftp', ['--option', 'blksize 1468', '--option', 'windowsize 16', '--option', 'tsize 0', '-g', '-r', fw('1.0.0.1'), '-l', out, '127.0.0.1', port]]);
      runs.push(['atftp', ['-g', '-r', fw('1.0.0.2'), '-l', out, '127.0.0.1', port]]);
    }
    if (hpa) runs.push(['tftp', ['127.0.0.1', port, '-m', 'octet', '-c', 'get', fw('1.0.0.1'), out]]);
    for (const [cmd, args] of runs) {
      await run(cmd, args, { timeout: 60_000 });
      const want = args.includes(fw('1.0.0.2')) ? exact : image;
      assert.ok(readFileSync(out).equals(want), `${name}: ${cmd} ${args.join(' ')}`);
      rmSync(out);
      // The client is gone once it sent the last ACK; the server is done with it a moment later.
      await sessionsDrain(s, 5000);
    }
  }
});

test('block numbers wrap past 65535, windows of 64, an exact multiple ends with an empty block', async () => {
  for (const [name, s] of both) {
    const c = rawClient(s.tftpPort as number);
    assert.ok((await download(c, fw('1.0.0.3'), { blksize: '8', windowsize: '64' })).equals(wraps), `${name}: 75,000 blocks`);
    await sessionsDrain(s, 5000); // the server takes the last ACK a moment after it was sent
    let blocks = 0;
    const got = await download(c, fw('1.0.0.2'), { blksize: '512', tsize: '0' }, () => blocks++);
    assert.ok(got.equals(exact), `${name}: exact multiple`);
    assert.is(blocks, 9, `${name}: 8 full blocks and an empty one`);
    await c.close();
    await sessionsDrain(s, 5000);
  }
});

test('hostile packets on the transfer port: 10,000 ignored, the download still completes', async () => {
  let seed = 4242;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (const [name, s] of both) {
    const c = rawClient(s.tftpPort as number);
    let sent = 0;
    const noise = (block: number, port: number) => {
      for (let k = 0; k < 5; k++, sent++) {
        const kind = sent % 5;
        let b: Buffer;
        if (kind === 0) {
          // random bytes that are no TFTP opcode (first byte not zero), or too short for one
          b = Buffer.from(Array.from({ length: Math.floor(rnd() * 60) }, () => Math.floor(rnd() * 256)));
          if (b.length >= 2 && b[0] === 0) b[0] = 1 + Math.floor(rnd() * 255);
        } else if (kind === 1) b = Buffer.concat([P.ack(block), randomBytes(1 + Math.floor(rnd() * 8))]); // ACK of the wrong length
        else if (kind === 2) b = P.ack(Math.max(0, block - 1)); // duplicate
        else if (kind === 3) b = P.ack((block + 30_000) & 0xffff); // far outside the window
        else b = Buffer.from([0, 7 + Math.floor(rnd() * 200), 0, 1]); // unknown opcode
        c.send(b, port);
      }
    };
    const got = await download(c, fw('1.0.0.1'), { blksize: '512' }, noise);
    assert.ok(got.equals(image), `${name}: same bytes`);
    assert.ok(sent >= 10_000, `${name}: ${sent} hostile packets`);
    await c.close();
    await sessionsDrain(s, 5000);
  }
});

test('an ERROR from the client ends the transfer; a DATA packet is answered with an ERROR', async () => {
  for (const [name, s] of both) {
    const c = rawClient(s.tftpPort as number);
    c.send(P.request('RRQ', fw('1.0.0.1')));
    const d = await c.expect('block 1');
    assert.is(d.p.op, 'DATA');
    c.send(P.error(0, 'cancelled by the user'), d.port);
    await sessionsDrain(s, 5000);
    c.send(P.request('RRQ', fw('1.0.0.1')));
    const d2 = await c.expect('block 1 again');
    c.send(P.data(1, Buffer.from('not from a reader')), d2.port);
    let e = await c.expect('the refusal');
    while (e.p.op === 'DATA') e = await c.expect('the refusal'); // a retransmission on the way
    assert.is(e.p.op, 'ERROR', name);
    assert.is((e.p as { code: number }).code, P.ERR.illegalOperation, name);
    await sessionsDrain(s, 5000);
    await c.close();
  }
});

test('a client that vanishes: five retransmissions, then the session and its firmware slot are freed', async () => {
  await Promise.all(
    both.map(async ([name, s]) => {
      const c = rawClient(s.tftpPort as number);
      c.send(P.request('RRQ', fw('1.0.0.1'), { timeout: '1' }));
      const o = await c.expect('OACK');
      c.send(P.ack(0), o.port);
      let copies = 0;
      while (copies < 6) {
        const d = await c.expect(`copy ${copies + 1} of block 1`);
        assert.is(d.p.op, 'DATA');
        assert.is((d.p as { block: number }).block, 1);
        copies++;
      }
      // Block 1 and five retransmissions; one more timeout and the transfer is given up.
      await sessionsDrain(s, 3000);
      // The only firmware slot is free again: a new download is served, not refused as busy.
      assert.ok((await download(c, fw('1.0.0.2'), { blksize: '512' })).equals(exact), name);
      await c.close();
    }),
  );
});

test('closing the server ends a download in flight', async () => {
  for (const [name, s] of both) {
    const c = rawClient(s.tftpPort as number);
    c.send(P.request('RRQ', fw('1.0.0.1')));
    const d = await c.expect('block 1');
    assert.is(d.p.op, 'DATA');
    assert.is(s.tftp?.sessions(), 1);
    await s.tftp?.close();
    await sessionsDrain(s, 5000);
    c.send(P.ack(1), d.port);
    assert.is(await c.next(300), undefined, `${name}: nothing after the close`);
    await c.close();
  }
});

test.run();
