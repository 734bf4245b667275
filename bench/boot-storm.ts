/**
 * `npm run bench -- boot-storm [--phones N] [--stored M] [--seconds S] [--rounds R] [--only TEXT]`
 *
 * Boot storm: edgeprov (one core) against nginx serving the same files pre-rendered from disk
 * (one worker, same core) and bare Node servers answering each path with the same bytes, all in one
 * run, with the load generators (wrk for keep-alive, curl for new phones, and the phone simulator)
 * on the other core. Needs Debian's nginx, wrk and curl: `apt-get install nginx wrk curl`.
 */
import { mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TLS_CIPHERS } from '../src/server/tls.ts';
import { bootPhone, keepAliveAgent } from '../src/sim/phone.ts';
import { type WrkResult, cpuMeter, root, curlNewConnections, json, nginxConfig, peakRssMb, pinSelf, requireTool, run, serverPid, startEdgeprovBench, startPinned, stop, table, tempDir, waitForPort, wrk } from './lib.ts';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const PHONES = arg('phones', 5000);
const STORED = Math.max(arg('stored', 10_000), PHONES);
const SECONDS = arg('seconds', 4);
const ROUNDS = arg('rounds', 5);
/** New phones per round in the new-connection scenarios (one request each, full handshake). */
const NEW_PER_ROUND = arg('new-per-round', 2000);
/** `--only <text>`: just the wrk scenarios whose name contains it (say, "HTTP keep-alive"), no simulator storm. */
const ONLY = process.argv.includes('--only') ? (process.argv[process.argv.indexOf('--only') + 1] ?? '') : undefined;
const SERVER_CORE = 1;
const CLIENT_CORE = 0;

requireTool('nginx', 'apt-get install nginx');
requireTool('wrk', 'apt-get install wrk');
requireTool('curl', 'apt-get install curl');
requireTool('taskset', 'apt-get install util-linux');

const work = tempDir('edgeprov-bench-');
const dataDir = join(work, 'data');
const mac = (i: number) => `0004f2${i.toString(16).padStart(6, '0')}`;

async function main(): Promise<void> {
  // This process drives the load (wrk's request lists, the phone simulator): on the client core.
  await pinSelf(CLIENT_CORE);
  process.stdout.write(`boot-storm: ${PHONES} phones, ${STORED} devices stored, ${ROUNDS} rounds of ${SECONDS}s per wrk run; server on core ${SERVER_CORE}, clients on core ${CLIENT_CORE}\n`);
  const srv = await startEdgeprovBench(SERVER_CORE, dataDir);
  const api = `http://127.0.0.1:${srv.http}/api/v1`;
  const token = srv.token;
  const tenant = await json('POST', `${api}/tenants`, token, { name: 'Bench', settings: { allowBasicOverHttp: true } });
  const T = `${api}/tenants/${tenant.id}`;
  const site = await json('POST', `${T}/sites`, token, { name: 'HQ', subnets: ['10.0.0.0/8'], timeZone: 'Europe/Berlin', sip: { server: 'pbx.example.com' }, ntp: { server: 'ntp.example.com' } });
  const profile = await json('POST', `${T}/profiles`, token, { name: 'Base', params: { 'lcl.ml.lang': 'English_United_Kingdom', 'up.backlight.idleIntensity': '1', 'tcpIpApp.sntp.address': '{{site.ntp.server}}' } });
  await json('PATCH', T, token, { profileIds: [profile.id] });
  for (let start = 0; start < STORED; start += 5000) {
    const items = [];
    for (let i = start; i < Math.min(STORED, start + 5000); i++) {
      items.push({ op: 'create', device: { mac: mac(i), model: 'VVX500', name: `Phone ${i}`, siteId: site.id, lines: [{ index: 1, address: String(10000 + i), authPassword: `pw-${i}` }] } });
    }
    await json('POST', `${T}/devices/bulk`, token, { items });
  }
  const prov = await json('GET', `${T}/provisioning`, token);
  const caPem = readFileSync(join(dataDir, 'tls', 'ca.crt'), 'utf8');
  const basic = `Basic ${Buffer.from(`${prov.username}:${prov.password}`).toString('base64')}`;
  const base = `/p/${tenant.provisioning.key}/`;

  // The request mix of a booting phone: master, its config, the shared defaults.
  const paths: string[] = [];
  for (let i = 0; i < PHONES; i++) paths.push(`${base}${mac(i)}.cfg`, `${base}${mac(i)}-device.cfg`, `${base}defaults.cfg`);

  /** Every path fetched from an edgeprov, 200 at a time (which warms its render cache); `keep` gets each file. */
  const fetchEvery = async (port: number, keep?: (path: string, body: Buffer) => void) => {
    const one = async (p: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${p}`, { headers: { authorization: basic } });
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status !== 200) throw new Error(`${p}: ${res.status}`);
      keep?.(p, body);
    };
    for (let i = 0; i < paths.length; i += 200) await Promise.all(paths.slice(i, i + 200).map(one));
  };

  // Pre-render every file to disk for nginx, fetched from edgeprov itself.
  const www = join(work, 'www');
  await fetchEvery(srv.http, (p, body) => {
    const file = join(www, p);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, body);
  });
  await run('chmod', ['-R', 'a+rX', work]);

  // nginx, one worker on the server core, same files, same certificate types.
  const tlsDir = join(dataDir, 'tls');
  const nginxConf = join(work, 'nginx.conf');
  writeFileSync(
    nginxConf,
    nginxConfig(
      work,
      `  server {
    listen 127.0.0.1:18481;
    listen 127.0.0.1:18482 ssl;
    ssl_certificate ${tlsDir}/server-ecdsa.crt;
    ssl_certificate_key ${tlsDir}/server-ecdsa.key;
    ssl_certificate ${tlsDir}/server-rsa.crt;
    ssl_certificate_key ${tlsDir}/server-rsa.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root ${www};
  }
  server {
    listen 127.0.0.1:18483 ssl;
    ssl_certificate ${tlsDir}/server-rsa.crt;
    ssl_certificate_key ${tlsDir}/server-rsa.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root ${www};
  }`,
      'types { application/xml cfg; }',
    ),
  );
  const nginx = await startPinned(SERVER_CORE, 'nginx', ['-c', nginxConf, '-p', work], undefined);
  await waitForPort(18481);

  // A bare node:http server returning the same bytes to the same requests: the ceiling for any Node server.
  const bare = await startBare(www);
  // And bare node:https servers with each certificate: what Node's TLS allows per new connection.
  const bareTls = {
    ecdsa: await startBare(www, { cert: join(tlsDir, 'server-ecdsa.crt'), key: join(tlsDir, 'server-ecdsa.key') }),
    rsa: await startBare(www, { cert: join(tlsDir, 'server-rsa.crt'), key: join(tlsDir, 'server-rsa.key') }),
  };

  // The same server with just the RSA certificate, on the same data, beside the first one (idle
  // while the other is measured), its render cache warmed the same way, so the two certificate
  // types are compared on handshakes alone and in the same rounds.
  const rsa = await startEdgeprovBench(SERVER_CORE, dataDir, ['--https-cert-file', join(tlsDir, 'server-rsa.crt'), '--https-key-file', join(tlsDir, 'server-rsa.key')]);
  await fetchEvery(rsa.http);

  const auth = { Authorization: basic };
  const peaks: Array<[string, number]> = [];
  const notePeak = async (phase: string) => {
    peaks.push([phase, peakRssMb(srv.pid)]);
    process.stdout.write(`  peak RSS of edgeprov after ${phase}: ${peaks[peaks.length - 1]?.[1]} MB\n`);
  };
  await notePeak('seeding and the first fetch of every file');

  // Each server's CPU time, read around every run: what a request costs the server whether or not
  // the client core kept it busy (full TLS handshakes cost the client about as much as the server).
  const nginxWorker = await serverPid(nginx.child);
  const meters = new Map<number, ReturnType<typeof cpuMeter>>();
  for (const [name, pid] of [['edgeprov', srv.pid], ['edgeprov-rsa', rsa.pid], ['nginx', nginxWorker], ['bare', bare.pid], ['bare-ecdsa', bareTls.ecdsa.pid], ['bare-rsa', bareTls.rsa.pid]] as const) {
    meters.set(pid, cpuMeter(name, pid));
  }

  // Keep-alive scenarios run wrk for a while; new-connection ones send each of NEW_PER_ROUND
  // phones' master file on a connection of its own with a full handshake (curl, see lib.ts).
  type Run = { label: string; target: string; url: string; pid: number; headers?: Record<string, string>; fresh?: boolean };
  const all: Run[] = [
    { label: 'HTTP keep-alive', target: 'edgeprov', url: `http://127.0.0.1:${srv.http}`, pid: srv.pid, headers: auth },
    { label: 'HTTP keep-alive', target: 'bare node:http', url: `http://127.0.0.1:${bare.port}`, pid: bare.pid, headers: auth },
    { label: 'HTTP keep-alive', target: 'nginx static', url: 'http://127.0.0.1:18481', pid: nginxWorker },
    { label: 'HTTPS keep-alive', target: 'edgeprov', url: `https://127.0.0.1:${srv.https}`, pid: srv.pid, headers: auth },
    { label: 'HTTPS keep-alive', target: 'nginx static', url: 'https://127.0.0.1:18482', pid: nginxWorker },
    { label: 'HTTPS new phone (ECDSA)', target: 'edgeprov', url: `https://127.0.0.1:${srv.https}`, pid: srv.pid, headers: auth, fresh: true },
    { label: 'HTTPS new phone (ECDSA)', target: 'nginx static', url: 'https://127.0.0.1:18482', pid: nginxWorker, fresh: true },
    { label: 'HTTPS new phone (ECDSA)', target: 'bare node:https', url: `https://127.0.0.1:${bareTls.ecdsa.port}`, pid: bareTls.ecdsa.pid, headers: auth, fresh: true },
    { label: 'HTTPS new phone (RSA)', target: 'edgeprov', url: `https://127.0.0.1:${rsa.https}`, pid: rsa.pid, headers: auth, fresh: true },
    { label: 'HTTPS new phone (RSA)', target: 'nginx static', url: 'https://127.0.0.1:18483', pid: nginxWorker, fresh: true },
    { label: 'HTTPS new phone (RSA)', target: 'bare node:https', url: `https://127.0.0.1:${bareTls.rsa.port}`, pid: bareTls.rsa.pid, headers: auth, fresh: true },
  ];
  const runs = ONLY === undefined ? all : all.filter((r) => r.label.includes(ONLY));
  // Rounds, each running every scenario once: a slow spell of this shared machine then lands on
  // one round of everything instead of on one server, and the median of the rounds is reported.
  type Sample = WrkResult & { cpuUs: number };
  const samples = new Map<string, Sample[]>();
  const masters = paths.filter((_, i) => i % 3 === 0);
  for (let round = 1; round <= ROUNDS; round++) {
    // Phones not seen in earlier rounds, the same ones for every server of this round.
    const from = ((round - 1) * NEW_PER_ROUND) % masters.length;
    const phones = masters.slice(from, from + NEW_PER_ROUND);
    for (const r of runs) {
      const meter = meters.get(r.pid) as ReturnType<typeof cpuMeter>;
      const cpu0 = meter.seconds();
      const res = r.fresh
        ? await curlNewConnections({ core: CLIENT_CORE, url: r.url, paths: phones, parallel: 32, ...(r.headers && { headers: r.headers }) })
        : await wrk({ core: CLIENT_CORE, url: r.url, paths, seconds: SECONDS, connections: 64, ...(r.headers && { headers: r.headers }) });
      const cpuUs = Math.round(((meter.seconds() - cpu0) * 1e6) / Math.max(1, res.requests));
      const key = `${r.label}/${r.target}`;
      samples.set(key, [...(samples.get(key) ?? []), { ...res, cpuUs }]);
      process.stdout.write(`  round ${round}  ${r.label.padEnd(24)} ${r.target.padEnd(16)} ${String(res.rps).padStart(8)} req/s  p50 ${res.p50ms} ms  p99 ${res.p99ms} ms  server CPU ${cpuUs} µs/req  errors ${res.errors}\n`);
    }
  }
  for (const m of meters.values()) m.remove();
  await notePeak('the wrk rounds');
  await stop(rsa.child);
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number;
  const rows: Array<Array<string | number>> = [];
  for (const r of runs) {
    const got = samples.get(`${r.label}/${r.target}`) ?? [];
    rows.push([r.label, r.target, median(got.map((g) => g.rps)), median(got.map((g) => g.p50ms)), median(got.map((g) => g.p99ms)), median(got.map((g) => g.cpuUs)), got.reduce((n, g) => n + g.errors, 0)]);
  }

  // Full phone boots: the simulator with Digest, every file, optional probes and log uploads.
  const storm = ONLY !== undefined ? undefined : await simulatorStorm(`https://127.0.0.1:${srv.https}${base}`, prov.username, prov.password, caPem);
  await notePeak('the phone simulator storm');
  const rss = Math.max(...peaks.map(([, mb]) => mb));
  await stop(srv.child);
  await stop(nginx.child);
  bare.close();
  bareTls.ecdsa.close();
  bareTls.rsa.close();

  // In a process of its own on the server core, now free: this one's heap holds every wrk sample.
  const cold = storm ? await coldRenderPinned() : 0;
  // Each ratio is the median of the ratios within a round, where the two servers ran seconds
  // apart: a slow spell of the machine then moves both sides of one ratio, not one side of all.
  // Throughput: requests/s over requests/s. Per server CPU: what one core could serve, from each
  // server's CPU time per request, which the client core cannot cap.
  const paired = (a: string, b: string, of: (x: Sample, y: Sample) => number): string => {
    const as = samples.get(a) ?? [];
    const bs = samples.get(b) ?? [];
    const rs = as.flatMap((x, i) => (bs[i] ? [of(x, bs[i] as Sample)] : []));
    return rs.length ? median(rs).toFixed(2) : 'n/a';
  };
  const ratioRow = (name: string, a: string, b: string, target: string) => [
    name,
    paired(a, b, (x, y) => x.rps / Math.max(1, y.rps)),
    paired(a, b, (x, y) => y.cpuUs / Math.max(1, x.cpuUs)),
    target,
  ];
  process.stdout.write(`\nmedians of ${ROUNDS} rounds (keep-alive: ${SECONDS} s of wrk; new phone: ${NEW_PER_ROUND} phones, one request each on its own connection):\n${table(['scenario', 'server', 'req/s', 'p50 ms', 'p99 ms', 'server CPU µs/req', 'errors'], rows)}\n\n`);
  process.stdout.write(
    `${table(
      ['ratio (median of per-round ratios)', 'throughput', 'per server CPU', 'target'],
      [
        ratioRow('HTTP keep-alive: edgeprov / bare node:http', 'HTTP keep-alive/edgeprov', 'HTTP keep-alive/bare node:http', '≥ 0.9'),
        ratioRow('HTTP keep-alive: edgeprov / nginx', 'HTTP keep-alive/edgeprov', 'HTTP keep-alive/nginx static', '≥ 0.5'),
        ratioRow('HTTPS keep-alive: edgeprov / nginx', 'HTTPS keep-alive/edgeprov', 'HTTPS keep-alive/nginx static', '≥ 0.4'),
        ratioRow('HTTPS new phone ECDSA: edgeprov / nginx', 'HTTPS new phone (ECDSA)/edgeprov', 'HTTPS new phone (ECDSA)/nginx static', '≥ 0.4'),
        ratioRow('HTTPS new phone: edgeprov ECDSA / RSA', 'HTTPS new phone (ECDSA)/edgeprov', 'HTTPS new phone (RSA)/edgeprov', '≥ 3'),
        ratioRow('HTTPS new phone: bare node:https ECDSA / RSA (reference)', 'HTTPS new phone (ECDSA)/bare node:https', 'HTTPS new phone (RSA)/bare node:https', ''),
        ratioRow('HTTPS new phone: nginx ECDSA / RSA (reference)', 'HTTPS new phone (ECDSA)/nginx static', 'HTTPS new phone (RSA)/nginx static', ''),
        ratioRow('HTTPS new phone ECDSA: edgeprov / bare node:https (reference)', 'HTTPS new phone (ECDSA)/edgeprov', 'HTTPS new phone (ECDSA)/bare node:https', ''),
      ],
    )}\n\n`,
  );
  if (!storm) return;
  process.stdout.write(
    `${table(
      ['phone simulator storm (HTTPS, Digest, keep-alive)', 'value'],
      [
        ['phones booted', storm.phones],
        ['requests', storm.requests],
        ['requests/s', storm.rps],
        ['p50 / p99 ms', `${storm.p50} / ${storm.p99}`],
        ['errors (5xx, failed boots)', storm.errors],
        [`peak RSS of edgeprov (${STORED} devices stored)`, `${rss} MB (target ≤ 250)`],
        ['cold render, 300-parameter profile, one core', `${cold} configs/s (target ≥ 5000)`],
      ],
    )}\n`,
  );
}

/**
 * A bare node:http server answering each path with the same bytes edgeprov answers it with (every
 * file under `www`, held in memory), or node:https with `tls` (PEM files) and edgeprov's TLS
 * settings: what Node itself allows on the same requests.
 */
function startBare(www: string, tls?: { cert: string; key: string }): Promise<{ port: number; pid: number; close: () => void }> {
  const server = tls
    ? `require('node:https').createServer({ cert: fs.readFileSync(${JSON.stringify(tls.cert)}), key: fs.readFileSync(${JSON.stringify(tls.key)}), minVersion: 'TLSv1.2', ciphers: ${JSON.stringify(TLS_CIPHERS)}, honorCipherOrder: true, ecdhCurve: 'X25519:P-256:P-384' }, handler)`
    : `require('node:http').createServer(handler)`;
  // In this process (core 0 runs wrk), so pin it by running it as its own pinned child instead.
  return startPinned(
    SERVER_CORE,
    process.execPath,
    [
      '-e',
      `const fs = require('node:fs'); const path = require('node:path');
       const www = ${JSON.stringify(www)};
       const files = new Map();
       for (const f of fs.readdirSync(www, { recursive: true })) {
         const full = path.join(www, f);
         if (fs.statSync(full).isFile()) files.set('/' + f, fs.readFileSync(full));
       }
       const handler = (q, r) => {
         const b = files.get(q.url);
         if (!b) { r.writeHead(404, { 'Content-Length': 0 }); r.end(); return; }
         r.writeHead(200, { 'Content-Type': 'application/xml', 'Content-Length': b.length, ETag: '"x"' });
         r.end(b);
       };
       const s = ${server};
       s.keepAliveTimeout = 65000; s.listen(0, '127.0.0.1', () => console.log('bare ' + s.address().port));`,
    ],
    /bare \d+/,
  ).then(({ child, output }) => ({ port: Number(/bare (\d+)/.exec(output())?.[1]), pid: child.pid as number, close: () => child.kill() }));
}

/** `npm run bench -- cold-render` on the server core: configs/s. */
async function coldRenderPinned(): Promise<number> {
  const { stdout } = await run('taskset', ['-c', String(SERVER_CORE), process.execPath, '--import', 'tsx', join(root, 'bench/run.ts'), 'cold-render']);
  return Number(/(\d+) configs\/s/.exec(stdout)?.[1] ?? 0);
}

async function simulatorStorm(baseUrl: string, username: string, password: string, ca: string) {
  const agent = keepAliveAgent(true, ca);
  const started = performance.now();
  const latencies: number[] = [];
  let errors = 0;
  let requests = 0;
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= PHONES) return;
      try {
        const r = await bootPhone({ base: baseUrl, mac: mac(i), username, password, ca, agent });
        requests += r.requests.length;
        for (const q of r.requests) {
          latencies.push(q.ms);
          if (q.status >= 500) errors++;
        }
        if (r.master !== 'own') errors++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: 200 }, worker));
  const secs = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => Math.round((latencies[Math.floor((latencies.length - 1) * p)] ?? 0) * 100) / 100;
  return { phones: PHONES, requests, rps: Math.round(requests / secs), p50: pct(0.5), p99: pct(0.99), errors };
}

await main();
// The data, the pre-rendered files and the server's log (hundreds of MB after a run); kept with BENCH_KEEP=1.
if (!process.env.BENCH_KEEP) rmSync(work, { recursive: true, force: true });
