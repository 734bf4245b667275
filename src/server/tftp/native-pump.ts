import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * The native read pump (`native/tftp_pump.c`, built by `npm install` into `build/Release/`): one
 * thread per firmware download sending blocks from a blocking socket, as tftpd-hpa's child process
 * does. In lock-step transfers (no windowsize) the time between an ACK and the next DATA is the
 * whole cost, and the event loop alone added about a fifth to it (bench/tftp.ts). Optional: when it
 * was not built (no compiler, not Linux) downloads go through {@link ReadSession} instead.
 */
export interface NativeReadOptions {
  /** Address to bind the transfer's socket to (its port is chosen by the kernel: the TID). */
  local: string;
  /** The client's address and port. */
  address: string;
  port: number;
  /** An open file, owned by the caller until `done` runs. */
  fd: number;
  size: number;
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  retries: number;
  /** OACK to send first (and wait for ACK 0); without it block 1 goes out at once. */
  oack?: Buffer;
}

export interface NativePump {
  /** Starts the transfer; throws when its socket cannot be made. `done` runs once, on the loop. */
  read(opts: NativeReadOptions, done: (ok: boolean, reason: string) => void): unknown;
  /** Ends a running transfer ("server closing"); its `done` still runs. */
  abort(handle: unknown): void;
}

const addon = fileURLToPath(new URL('../../../build/Release/tftp_pump.node', import.meta.url));

function load(): { pump: NativePump; why?: undefined } | { pump?: undefined; why: string } {
  if (process.platform !== 'linux') return { why: `not built on ${process.platform}` };
  if (!existsSync(addon)) return { why: 'not built (npm install compiles it; a C compiler and Node headers are needed)' };
  try {
    return { pump: createRequire(import.meta.url)(addon) as NativePump };
  } catch (err) {
    return { why: `failed to load: ${(err as Error).message}` };
  }
}

const loaded = load();

/** The pump, or why there is none. */
export const nativePump: NativePump | undefined = loaded.pump;
export const nativePumpUnavailable: string | undefined = loaded.why;
