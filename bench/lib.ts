import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

/** Helpers shared by the benchmarks: processes pinned to cores, wrk runs, tables. */

export const run = promisify(execFile);
export const root = new URL('..', import.meta.url).pathname;

export function requireTool(name: string, hint: string): void {
  try {
    execFileSync('which', [name], { stdio: 'ignore' });
  } catch {
    process.stderr.write(`bench needs ${name}: ${hint}\n`);
    process.exit(2);
  }
}

/**
 * A module of the compiled server in dist/ (what `npm start` and the container run), built once per
 * benchmark run from the current sources.
 */
export async function built<T>(path: string): Promise<T> {
  buildOnce();
  const url = pathToFileURL(join(root, 'dist', path)).href;
  return (await import(url)) as T;
}
let builtAlready = false;
export function buildOnce(): void {
  if (builtAlready) return;
  execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
  builtAlready = true;
}

/**
 * Node's flags for the server, the same as `npm start` (package.json) and the container's entry
 * point; BENCH_NODE_FLAGS replaces them to compare others ("" for none).
 */
export const SERVER_NODE_FLAGS =
  process.env.BENCH_NODE_FLAGS !== undefined ? process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean) : ['--max-semi-space-size=8', '--heap-growing-percent=50'];

/** The server's entry point as `npm start` runs it: the compiled dist/main.js, built from the current sources. */
export function serverEntry(): string {
  buildOnce();
  return join(root, 'dist/main.js');
}

export const tempDir = (prefix: string): string => mkdtempSync(join(tmpdir(), prefix));

/**
 * Starts a process pinned to `core`; resolves once `ready` matches its output (at once without
 * `ready`). With `logFile` its output goes to that file (as a deployed server's would) instead of
 * a pipe this process has to read, and readiness is polled there.
 */
export function startPinned(
  core: number,
  cmd: string,
  args: string[],
  ready: RegExp | undefined,
  env: NodeJS.ProcessEnv = process.env,
  logFile?: string,
): Promise<{ child: ChildProcess; output: () => string }> {
  if (logFile) {
    const fd = openSync(logFile, 'a');
    const child = spawn('taskset', ['-c', String(core), cmd, ...args], { env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const output = () => readFileSync(logFile, 'utf8');
    return new Promise((resolve, reject) => {
      let exited = false;
      child.once('exit', (code) => {
        exited = true;
        reject(new Error(`${cmd} exited ${code}: ${output().slice(-2000)}`));
      });
      const poll = () => {
        if (exited) return;
        if (!ready || ready.test(output())) resolve({ child, output });
        else setTimeout(poll, 20);
      };
      poll();
    });
  }
  const child = spawn('taskset', ['-c', String(core), cmd, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    if (!ready) resolve({ child, output: () => out });
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.length > 1_000_000) out = out.slice(-100_000);
      if (ready?.test(out)) resolve({ child, output: () => out });
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${cmd} exited ${code}: ${out.slice(-2000)}`)));
  });
}

/** Moves this process (every thread: wrk's Lua driver, the phone simulator) onto `core`. */
export async function pinSelf(core: number): Promise<void> {
  await run('taskset', ['-a', '-p', '-c', String(core), String(process.pid)]);
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await done;
}

/** Peak resident memory of a process, in MB (VmHWM). */
export function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/** The pid of the real server under `taskset` (its newest descendant). */
export async function serverPid(child: ChildProcess): Promise<number> {
  let pid = child.pid as number;
  for (let i = 0; i < 5; i++) {
    const kids = await run('pgrep', ['-P', String(pid)]).then((r) => r.stdout.trim().split('\n').filter(Boolean), () => [] as string[]);
    if (kids.length === 0) return pid;
    pid = Number(kids[kids.length - 1]);
  }
  return pid;
}

export interface WrkResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  requests: number;
}

const unit = (v: string, u: string): number => Number(v) * (u === 'us' ? 0.001 : u === 's' ? 1000 : u === 'm' ? 60_000 : 1);

/** One wrk run on core `core` over the given paths (round robin), with optional extra headers. */
export async function wrk(opts: { core: number; url: string; paths: string[]; headers?: Record<string, string>; seconds: number; connections: number }): Promise<WrkResult> {
  const dir = tempDir('edgeprov-wrk-');
  const list = join(dir, 'paths.txt');
  writeFileSync(list, opts.paths.join('\n') + '\n');
  const script = join(dir, 'paths.lua');
  writeFileSync(
    script,
    // Each request is formatted once, up front: formatting per request in Lua costs the client
    // core more than some of the servers spend answering it.
    `local reqs = {}
local i = 0
init = function(args) for line in io.lines(args[1]) do reqs[#reqs + 1] = wrk.format("GET", line) end end
request = function()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
`,
  );
  const headerArgs = Object.entries(opts.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const { stdout } = await run(
    'taskset',
    ['-c', String(opts.core), 'wrk', '-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency', '-s', script, ...headerArgs, opts.url, '--', list],
    { maxBuffer: 10_000_000 },
  );
  rmSync(dir, { recursive: true, force: true });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
  const lat = (pct: string): number => {
    const m = new RegExp(`\\s${pct}%\\s+([\\d.]+)(us|ms|s|m)`).exec(stdout);
    return m ? Math.round(unit(m[1] as string, m[2] as string) * 100) / 100 : NaN;
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
  return { rps: Math.round(rps), p50ms: lat('50'), p99ms: lat('99'), errors: non2xx + sockErrors, requests };
}

/**
 * Connections like those of phones connecting for the first time: curl sends one request per
 * connection (`Connection: close`), `parallel` at a time, with its TLS session cache off, so every
 * handshake is a full one. wrk keeps the TLS session of a connection it reopens, and a server that
 * issues tickets then resumes about every other one: not the handshake of a phone never seen before.
 */
export async function curlNewConnections(opts: { core: number; url: string; paths: string[]; headers?: Record<string, string>; parallel: number }): Promise<WrkResult> {
  const dir = tempDir('edgeprov-curl-');
  const config = join(dir, 'urls.txt');
  const quote = (v: string) => `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  writeFileSync(config, opts.paths.map((p) => `url = ${quote(opts.url + p)}\noutput = "/dev/null"\n`).join(''));
  const headerArgs = Object.entries(opts.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const started = performance.now();
  const { stdout } = await run(
    'taskset',
    ['-c', String(opts.core), 'curl', '--parallel', '--parallel-immediate', '--parallel-max', String(opts.parallel), '--insecure', '--no-sessionid', '--silent', '-H', 'Connection: close', ...headerArgs, '--write-out', '%{http_code} %{time_total}\n', '--config', config],
    { maxBuffer: 50_000_000 },
  ).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  const seconds = (performance.now() - started) / 1000;
  rmSync(dir, { recursive: true, force: true });
  const ms: number[] = [];
  let errors = 0;
  for (const line of stdout.split('\n')) {
    if (!line) continue;
    const [code, total] = line.split(' ');
    if (!/^[23]\d\d$/.test(code ?? '')) errors++;
    ms.push(Number(total) * 1000);
  }
  errors += Math.max(0, opts.paths.length - ms.length);
  ms.sort((a, b) => a - b);
  const pct = (p: number) => Math.round((ms[Math.floor((ms.length - 1) * p)] ?? NaN) * 100) / 100;
  return { rps: Math.round(ms.length / seconds), p50ms: pct(0.5), p99ms: pct(0.99), errors, requests: ms.length };
}

export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const all = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...all.slice(1).map(line)].join('\n');
}

export const ratio = (a: number, b: number): string => (b > 0 ? (a / b).toFixed(2) : 'n/a');

/** A JSON call to the admin API; throws with the body on any non-2xx answer. */
export async function json(method: string, url: string, token: string | undefined, body?: unknown): Promise<any> {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text.slice(0, 500)}`);
  return text ? JSON.parse(text) : undefined;
}

export async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

/**
 * CPU time of a process and everything it forks, through a cgroup of its own (v1 cpuacct or v2):
 * tftpd-hpa forks a child per transfer and ignores SIGCHLD, so its children never show in its own
 * /proc counters. Without a writable cgroup: the process's own counters (children may be missed).
 */
export function cpuMeter(name: string, pid: number): { seconds(): number; remove(): void } {
  const v1 = '/sys/fs/cgroup/cpuacct';
  const v2 = '/sys/fs/cgroup';
  for (const [base, file, scale] of [
    [v1, 'cpuacct.usage', 1e-9],
    [v2, 'cpu.stat', 1e-6],
  ] as const) {
    const dir = join(base, `edgeprov-bench-${name}-${process.pid}`);
    try {
      if (base === v2 && !existsSync(join(v2, 'cgroup.controllers'))) continue;
      mkdirSync(dir);
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      return {
        seconds: () => {
          const text = readFileSync(join(dir, file), 'utf8');
          const v = file === 'cpu.stat' ? Number(/usage_usec (\d+)/.exec(text)?.[1] ?? 0) : Number(text.trim());
          return v * scale;
        },
        remove: () => {
          try {
            writeFileSync(join(base, 'cgroup.procs'), String(pid));
          } catch {
            // the process is gone
          }
          try {
            rmdirSync(dir);
          } catch {
            // still busy: left for the system
          }
        },
      };
    } catch {
      // not this kind of cgroup here
    }
  }
  return { seconds: () => cpuSeconds(pid), remove: () => undefined };
}

/** CPU seconds a process (and the children it reaped) has used: utime+stime+cutime+cstime. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = [11, 12, 13, 14].reduce((a, i) => a + Number(fields[i]), 0);
  return ticks / 100; // USER_HZ
}

/**
 * edgeprov pinned to `core` on a fresh data dir with a system administrator; resolves with the
 * bound ports (parsed from its log) and a signed-in admin token.
 */
export async function startEdgeprovBench(core: number, dataDir: string, extra: string[] = []): Promise<{ child: ChildProcess; http: number; https: number; tftp: number; tftpPump: string; token: string; pid: number }> {
  const env = { ...process.env, EDGEPROV_LOG_LEVEL: 'info', EDGEPROV_DATA_DIR: dataDir };
  await run(process.execPath, [serverEntry(), 'init', '--email', 'bench@example.com', '--password', 'benchmark password'], { env }).catch(() => undefined);
  const p = await startPinned(
    core,
    process.execPath,
    [
      ...SERVER_NODE_FLAGS,
      // BENCH_PROF=DIR writes a V8 CPU profile of the server there (open it in Chrome DevTools).
      ...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROF] : []),
      serverEntry(), 'serve', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '0', '--tftp-port', '0', '--public-hosts', '127.0.0.1', '--backup-enabled', 'false', ...extra,
    ],
    // TFTP starts last: once it speaks, every listener has.
    /TFTP listening/,
    env,
    // Logs (the access lines too) go to a file beside the data, as a deployed server's would.
    join(dirname(dataDir), `edgeprov-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.log`),
  );
  const lines = p
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg?: string; address?: { port?: number }; firmwarePump?: string; why?: string });
  const listening = (what: string) => lines.find((l) => l.msg === `${what} listening`);
  const port = (what: string) => listening(what)?.address?.port ?? 0;
  const tftp = listening('TFTP');
  const http = port('HTTP');
  const token = (await json('POST', `http://127.0.0.1:${http}/api/v1/auth/token`, undefined, { email: 'bench@example.com', password: 'benchmark password' })).token as string;
  const tftpPump = `${tftp?.firmwarePump ?? 'unknown'}${tftp?.why ? ` (${tftp.why})` : ''}`;
  return { child: p.child, http, https: port('HTTPS'), tftp: port('TFTP'), tftpPump, token, pid: await serverPid(p.child) };
}

/** An nginx configuration for one worker in `work`, with `servers` (the `server { … }` blocks). */
export function nginxConfig(work: string, servers: string, types = ''): string {
  return `worker_processes 1;
daemon off;
user root;
pid ${work}/nginx.pid;
error_log ${work}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${work}/nginx-body;
  proxy_temp_path ${work}/nginx-proxy;
  fastcgi_temp_path ${work}/nginx-fcgi;
  uwsgi_temp_path ${work}/nginx-uwsgi;
  scgi_temp_path ${work}/nginx-scgi;
  ${types}
${servers}
}
`;
}
