import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { AppError, ERROR_CODES, type ErrorCode } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { HttpEnv } from './context.ts';

const STATUS_TO_CODE = new Map<number, ErrorCode>(
  (Object.entries(ERROR_CODES) as Array<[ErrorCode, number]>).filter(([code]) => code !== 'validation_failed').map(([code, status]) => [status, code]),
);

/** The one JSON error shape of the admin API. */
export function errorBody(code: ErrorCode, message: string, requestId: string, details?: unknown) {
  return { error: { code, message, requestId, ...(details !== undefined && { details }) } };
}

/**
 * Turns anything thrown into a response: known errors keep their code, framework errors map by
 * status, the rest becomes a generic 500 with one log line.
 */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof HTTPException) {
    const code = STATUS_TO_CODE.get(err.status) ?? (err.status >= 500 ? 'internal' : 'bad_request');
    const message = err.status === 400 && /json/i.test(err.message) ? 'malformed JSON in request body' : err.message || code;
    return new AppError(code, message, { cause: err });
  }
  return new AppError('internal', 'internal error', { cause: err });
}

export function apiErrorHandler(logger: Logger) {
  return (err: unknown, c: Context<HttpEnv>): Response => {
    const e = toAppError(err);
    const requestId = c.get('requestId') ?? '';
    if (e.code === 'internal') logger.error({ err: err instanceof Error ? err : String(err), reqId: requestId }, 'unhandled error');
    const res = c.json(errorBody(e.code, e.message, requestId, e.details), e.status as 400);
    for (const [k, v] of Object.entries(e.headers ?? {})) res.headers.set(k, v);
    if (e.code === 'unauthorized') res.headers.set('WWW-Authenticate', 'Bearer realm="edgeprov"');
    // The rest of an oversize body is not read: the connection cannot be reused.
    if (e.code === 'payload_too_large') res.headers.set('Connection', 'close');
    return res;
  };
}
