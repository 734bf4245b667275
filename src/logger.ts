import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths pino replaces with "[redacted]" wherever they appear in a log line. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'authPassword',
  '*.authPassword',
  'token',
  '*.token',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
];

export interface LoggerOptions {
  level: string;
  /** Where lines go; standard output when omitted. */
  destination?: NodeJS.WritableStream;
}

/** JSON lines, one per event, secrets redacted. */
export function createLogger(opts: LoggerOptions): Logger {
  return pino(
    {
      level: opts.level,
      base: { svc: 'edgeprov' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? process.stdout,
  );
}

/**
 * The same lines without redaction, for access logs whose fields never hold secrets. Written in
 * 4 KB batches rather than one write per request (a boot storm makes tens of thousands a second);
 * `flush()` it on shutdown.
 */
export function createAccessLogger(opts: LoggerOptions): Logger {
  const dest = opts.destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 });
  return pino({ level: opts.level, base: { svc: 'edgeprov' }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/** A logger that drops everything; for tests that do not look at logs. */
export const silentLogger = (): Logger => pino({ level: 'silent' });

/** Printable ASCII but `"` and `\`: what JSON.stringify would only put quotes around. */
const JSON_PLAIN = /^[ !#-[\]-~]*$/;

export interface RequestFields {
  reqId: string;
  method: string;
  path: string;
  status: number;
  ms: number;
  ip: string;
}

/**
 * The phone path's access line, `{"level":30,"time":…,<bindings>,"reqId":…,"msg":"request"}`, the
 * same line pino writes, serialised by hand straight into the logger's destination: a boot storm
 * writes tens of thousands a second, and pino's generic serialiser, a new ISO time string per line
 * and a destination write per line were a tenth of the work per request. Lines are written in
 * batches (64 KB, or 50 ms after the first). Loggers without a reachable destination get `info`.
 */
export function requestLogger(logger: Logger): { enabled(): boolean; write(f: RequestFields): void } {
  const raw = logger as unknown as Record<symbol, unknown>;
  const stream = raw[pino.symbols.streamSym] as { write(s: string): unknown } | undefined;
  const bindings = raw[pino.symbols.chindingsSym];
  const level = logger.levels.values.info;
  const enabled = () => logger.isLevelEnabled('info');
  if (!stream || typeof stream.write !== 'function' || typeof bindings !== 'string') {
    return { enabled, write: (f) => logger.info(f, 'request') };
  }
  let lastMs = 0;
  let lastTime = '';
  // Lines go to the destination together: every 64 KB, and at most 50 ms after the first of a
  // batch. Each write hands a copy of the batch to another thread, which on one busy core is paid
  // for per write: in 16 KB batches the lines cost a boot storm about a tenth of its throughput.
  let batch: string[] = [];
  let bytes = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const lines = batch;
    batch = [];
    bytes = 0;
    if (lines.length) stream.write(lines.join(''));
  };
  return {
    enabled,
    write(f) {
      const now = Date.now();
      if (now !== lastMs) {
        lastMs = now;
        lastTime = new Date(now).toISOString();
      }
      // reqId is checked against [A-Za-z0-9._-] and ip comes from the socket; method and path are
      // the client's and are quoted by JSON.stringify unless nothing in them needs it.
      const method = f.method === 'GET' ? '"GET"' : JSON.stringify(f.method);
      const path = JSON_PLAIN.test(f.path) ? `"${f.path}"` : JSON.stringify(f.path);
      const line = `{"level":${level},"time":"${lastTime}"${bindings},"reqId":"${f.reqId}","method":${method},"path":${path},"status":${f.status},"ms":${f.ms},"ip":"${f.ip}","msg":"request"}\n`;
      batch.push(line);
      bytes += line.length;
      // Not unref'd: a pending batch keeps the process up for those few milliseconds, so no line is lost.
      if (bytes >= 65_536) flush();
      else timer ??= setTimeout(flush, 50);
    },
  };
}
