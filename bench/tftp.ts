/**
 * TFTP: a 50 MB firmware image and a rendered config fetched from edgeprov and from tftpd-hpa
 * serving the same bytes, with the same clients in the same run — atftp at blksize 1468 (with and
 * without windowsize 16) and tftp-hpa (512-byte blocks) — then 200 concurrent config fetches.
 * Prints MB/s and server CPU seconds per transfer, with ratios. Servers on core 0, clients on
 * core 1. Needs `apt-get install atftp tftp-hpa tftpd-hpa`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpuMeter, json, ratio, requireTool, run, startEdgeprovBench, startPinned, stop, table, tempDir } from './lib.ts';

const SERVER_CORE = 0;
const CLIENT_CORE = 1;
const MB = Number(process.env.BENCH_TFTP_MB ?? 50);
const REPEAT = Number(process.env.BENCH_TFTP_REPEAT ?? 3);
const CONCURRENT = 200;

requireTool('atftp', 'apt-get install atftp');
requireTool('tftp', 'apt-get install tftp-hpa');
requireTool('in.tftpd', 'apt-get install tftpd-hpa');
requireTool('taskset', 'apt-get install util-linux');

const work = tempDir('edgeprov-bench-tftp-');
const VERSION = '6.4.3.5018';
const PART = '3111-48500-001';
const MAC = '0004f2b0b0b0';

async function main(): Promise<void> {
  process.stdout.write(`tftp: ${MB} MB image, best of ${REPEAT}; servers on core ${SERVER_CORE}, clients on core ${CLIENT_CORE}\n`);
  const srv = await startEdgeprovBench(SERVER_CORE, join(work, 'data'), ['--https-enabled', 'false']);
  process.stdout.write(`edgeprov sends firmware from: ${srv.tftpPump} (EDGEPROV_TFTP_PUMP=javascript for the event loop)\n`);
  const api = `http://127.0.0.1:${srv.http}/api/v1`;
  const image = randomBytes(MB * 1024 * 1024);
  const up = await fetch(`${api}/firmware/${VERSION}/images/${PART}.sip.ld`, { method: 'PUT', headers: { authorization: `Bearer ${srv.token}` }, body: image });
  if (up.status !== 201) throw new Error(`upload: ${up.status} ${await up.text()}`);
  const tenant = await json('POST', `${api}/tenants`, srv.token, { name: 'Bench' });
  await json('POST', `${api}/tenants/${tenant.id}/sites`, srv.token, { name: 'Loop', subnets: ['127.0.0.0/8'] });
  await json('POST', `${api}/tenants/${tenant.id}/devices`, srv.token, { mac: MAC, model: 'VVX501', lines: [{ index: 1, address: '1001', authPassword: 'x' }] });

  // tftpd-hpa serves the same names from a folder: the image, and the config edgeprov rendered.
  const root = join(work, 'tftproot');
  const fwName = `fw/${VERSION}/${PART}.sip.ld`;
  const cfgName = `${MAC}-device.cfg`;
  mkdirSync(join(root, 'fw', VERSION), { recursive: true });
  writeFileSync(join(root, fwName), image);
  await run('atftp', ['-g', '-r', cfgName, '-l', join(root, cfgName), '127.0.0.1', String(srv.tftp)], { timeout: 30_000 });
  await run('chmod', ['-R', 'a+rX', work]);
  const hpaPort = 18969;
  const hpa = await startPinned(SERVER_CORE, 'in.tftpd', ['-L', '-s', '-u', 'root', '--address', `127.0.0.1:${hpaPort}`, root], undefined);
  // in.tftpd prints nothing when ready: ask it for the config until it answers (atftp waits ~5 s per try).
  for (let attempt = 1; ; attempt++) {
    const ok = await run('atftp', ['-g', '-r', cfgName, '-l', join(work, 'probe.cfg'), '127.0.0.1', String(hpaPort)], { timeout: 10_000 }).then(() => true, () => false);
    if (ok) break;
    if (attempt === 5) throw new Error('tftpd-hpa did not answer');
  }
  const hpaPid = hpa.child.pid as number;

  const servers = [
    { name: 'edgeprov', port: srv.tftp, cpu: cpuMeter('edgeprov', srv.pid) },
    { name: 'tftpd-hpa', port: hpaPort, cpu: cpuMeter('tftpd', hpaPid) },
  ];
  const clients: Array<{ name: string; cmd: (port: number, file: string, out: string) => [string, string[]] }> = [
    { name: 'atftp blksize 1468', cmd: (port, file, out) => ['atftp', ['--option', 'blksize 1468', '-g', '-r', file, '-l', out, '127.0.0.1', String(port)]] },
    { name: 'atftp blksize 1468 windowsize 16', cmd: (port, file, out) => ['atftp', ['--option', 'blksize 1468', '--option', 'windowsize 16', '-g', '-r', file, '-l', out, '127.0.0.1', String(port)]] },
    { name: 'tftp-hpa (512)', cmd: (port, file, out) => ['tftp', ['127.0.0.1', String(port), '-m', 'octet', '-c', 'get', file, out]] },
  ];

  const rows: Array<Array<string | number>> = [];
  const results: Record<string, { mbps: number; cpu: number }> = {};
  for (const c of clients) {
    for (const s of servers) {
      let best = { mbps: 0, cpu: Infinity };
      for (let i = 0; i < REPEAT; i++) {
        const out = join(work, `out-${s.name}`);
        const [cmd, args] = c.cmd(s.port, fwName, out);
        const cpu0 = s.cpu.seconds();
        const t0 = performance.now();
        await run('taskset', ['-c', String(CLIENT_CORE), cmd, ...args], { timeout: 600_000 });
        const secs = (performance.now() - t0) / 1000;
        const cpu = s.cpu.seconds() - cpu0;
        if (!readFileSync(out).equals(image)) throw new Error(`${c.name} from ${s.name}: wrong bytes`);
        rmSync(out);
        const mbps = MB / secs;
        if (mbps > best.mbps) best = { mbps, cpu: Math.min(best.cpu, cpu) };
        else best.cpu = Math.min(best.cpu, cpu);
      }
      results[`${c.name}/${s.name}`] = best;
      rows.push([c.name, s.name, best.mbps.toFixed(1), best.cpu.toFixed(2), ((best.cpu / MB) * 1000).toFixed(1)]);
      process.stdout.write(`  ${c.name.padEnd(34)} ${s.name.padEnd(10)} ${best.mbps.toFixed(1).padStart(7)} MB/s  server CPU ${best.cpu.toFixed(2)} s\n`);
    }
  }

  // 200 phones fetching their config at once (atftp, default options).
  const storm: Array<Array<string | number>> = [];
  for (const s of servers) {
    const t0 = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: CONCURRENT }, (_, i) => {
        const out = join(work, `cfg-${s.name}-${i}`);
        return run('taskset', ['-c', String(CLIENT_CORE), 'atftp', '-g', '-r', cfgName, '-l', out, '127.0.0.1', String(s.port)], { timeout: 120_000 }).then(
          () => readFileSync(out).equals(readFileSync(join(root, cfgName))),
          () => false,
        );
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const failed = outcomes.filter((ok) => !ok).length;
    storm.push([s.name, CONCURRENT, failed, secs.toFixed(2)]);
    process.stdout.write(`  ${CONCURRENT} concurrent config fetches from ${s.name}: ${failed} failed, ${secs.toFixed(2)} s\n`);
  }

  process.stdout.write(`\n${table(['client', 'server', 'MB/s', 'server CPU s', 'CPU ms/MB'], rows)}\n\n`);
  const ratios = clients.map((c) => {
    const e = results[`${c.name}/edgeprov`] as { mbps: number; cpu: number };
    const h = results[`${c.name}/tftpd-hpa`] as { mbps: number; cpu: number };
    return [c.name, ratio(e.mbps, h.mbps), ratio(e.cpu, h.cpu)];
  });
  process.stdout.write(`${table(['client', 'throughput edgeprov / tftpd-hpa (target ≥ 1.0)', 'CPU per byte edgeprov / tftpd-hpa (target ≤ 1.5)'], ratios)}\n\n`);
  process.stdout.write(`${table(['server', 'concurrent fetches', 'failed (target 0)', 'seconds'], storm)}\n`);
  for (const s of servers) s.cpu.remove();
  await stop(hpa.child);
  await stop(srv.child);
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
