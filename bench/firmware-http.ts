/**
 * Firmware over HTTP: a 50 MB image downloaded by 4 concurrent clients (wrk, keep-alive) from
 * edgeprov (authenticated, storm control, streamed from its content-addressed store) and from
 * nginx `sendfile` serving the same file, in the same run; prints MB/s and the ratio. Server on
 * core 0, wrk on core 1. Needs `apt-get install nginx wrk`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { json, nginxConfig, ratio, requireTool, run, startEdgeprovBench, startPinned, stop, table, tempDir, waitForPort } from './lib.ts';

const SERVER_CORE = 0;
const CLIENT_CORE = 1;
const MB = Number(process.env.BENCH_FW_MB ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 4;

requireTool('nginx', 'apt-get install nginx');
requireTool('wrk', 'apt-get install wrk');
requireTool('taskset', 'apt-get install util-linux');

const work = tempDir('edgeprov-bench-fw-');
const VERSION = '6.4.3.5018';
const PART = '3111-48500-001';

/** wrk's transfer rate in MB/s, and its error count. */
async function download(url: string, headers: Record<string, string>): Promise<{ mbps: number; errors: number; requests: number }> {
  const args = ['-c', String(CLIENT_CORE), 'wrk', '-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--timeout', '30s', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url];
  const { stdout } = await run('taskset', args, { maxBuffer: 10_000_000 });
  const m = /Transfer\/sec:\s+([\d.]+)(KB|MB|GB)/.exec(stdout);
  const mbps = m ? Number(m[1]) * (m[2] === 'GB' ? 1024 : m[2] === 'KB' ? 1 / 1024 : 1) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
  return { mbps, errors: non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0), requests };
}

async function main(): Promise<void> {
  process.stdout.write(`firmware-http: ${MB} MB image, ${CONNECTIONS} connections, ${SECONDS}s per run; server on core ${SERVER_CORE}, wrk on core ${CLIENT_CORE}\n`);
  const srv = await startEdgeprovBench(SERVER_CORE, join(work, 'data'), ['--https-enabled', 'false', '--tftp-enabled', 'true']);
  const api = `http://127.0.0.1:${srv.http}/api/v1`;
  const image = randomBytes(MB * 1024 * 1024);
  const up = await fetch(`${api}/firmware/${VERSION}/images/${PART}.sip.ld`, { method: 'PUT', headers: { authorization: `Bearer ${srv.token}` }, body: image });
  if (up.status !== 201) throw new Error(`upload: ${up.status} ${await up.text()}`);
  const tenant = await json('POST', `${api}/tenants`, srv.token, { name: 'Bench', settings: { allowBasicOverHttp: true } });
  const prov = await json('GET', `${api}/tenants/${tenant.id}/provisioning`, srv.token);
  const basic = `Basic ${Buffer.from(`${prov.username}:${prov.password}`).toString('base64')}`;
  const path = `/p/${tenant.provisioning.key}/fw/${VERSION}/${PART}.sip.ld`;

  const www = join(work, 'www');
  mkdirSync(join(www, 'p', tenant.provisioning.key, 'fw', VERSION), { recursive: true });
  writeFileSync(join(www, path), image);
  await run('chmod', ['-R', 'a+rX', work]);
  const conf = join(work, 'nginx.conf');
  writeFileSync(conf, nginxConfig(work, `  server { listen 127.0.0.1:18491; root ${www}; }`));
  const nginx = await startPinned(SERVER_CORE, 'nginx', ['-c', conf, '-p', work], undefined);
  await waitForPort(18491);

  const e = await download(`http://127.0.0.1:${srv.http}${path}`, { Authorization: basic });
  process.stdout.write(`  edgeprov      ${e.mbps.toFixed(0).padStart(6)} MB/s  ${e.requests} downloads  errors ${e.errors}\n`);
  const n = await download(`http://127.0.0.1:18491${path}`, {});
  process.stdout.write(`  nginx sendfile ${n.mbps.toFixed(0).padStart(5)} MB/s  ${n.requests} downloads  errors ${n.errors}\n`);
  process.stdout.write(
    `\n${table(
      ['server', 'MB/s', 'downloads', 'errors'],
      [
        ['edgeprov', e.mbps.toFixed(0), e.requests, e.errors],
        ['nginx sendfile', n.mbps.toFixed(0), n.requests, n.errors],
      ],
    )}\n\nedgeprov / nginx sendfile: ${ratio(e.mbps, n.mbps)} (target ≥ 0.8)\n`,
  );
  await stop(nginx.child);
  await stop(srv.child);
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
