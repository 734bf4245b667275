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
