/**
 * The one error type of edgeprov. Every failure that a caller should see carries a code from a
 * closed set; each listener's error boundary maps codes to its protocol (HTTP status, TFTP error).
 */
export const ERROR_CODES = {
  bad_request: 400,
  validation_failed: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface FieldIssue {
  /** Dotted path of the offending field, e.g. `lines.0.address`; empty for the whole body. */
  path: string;
  message: string;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: FieldIssue[] | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { cause?: unknown; details?: FieldIssue[]; headers?: Record<string, string> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = opts.details;
    this.headers = opts.headers;
  }

  get status(): number {
    return ERROR_CODES[this.code];
  }
}

export const notFound = (what: string): AppError => new AppError('not_found', `${what} not found`);

export const conflict = (message: string, details?: FieldIssue[]): AppError =>
  new AppError('conflict', message, details ? { details } : {});

export const invalid = (details: FieldIssue[], message = 'request validation failed'): AppError =>
  new AppError('validation_failed', message, { details });

