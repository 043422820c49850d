import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from 'zod';

/** The one error shape every HTTP API of the project answers with. */
export interface ErrorEnvelope {
  error: {
    code: string;
    message: string;
    status: number;
    /** The request field at fault, as a dotted path (`body.amount`, `query.limit`). */
    field?: string;
    /** Extra machine-readable facts (e.g. the policy rule and remaining allowance). */
    details?: Record<string, unknown>;
  };
}

/** An error that is safe to show to the caller as it is. Anything else becomes a generic 500. */
export class AppError extends Error {
  readonly code: string;
  readonly status: number;
  readonly field: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: string,
    message: string,
    status: number,
    options: { field?: string; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = status;
    this.field = options.field;
    this.details = options.details;
  }

  toEnvelope(): ErrorEnvelope {
    const error: ErrorEnvelope['error'] = { code: this.code, message: this.message, status: this.status };
    if (this.field !== undefined) error.field = this.field;
    if (this.details !== undefined) error.details = this.details;
    return { error };
  }
}

export const invalidRequest = (message: string, field?: string, details?: Record<string, unknown>) =>
  new AppError('invalid_request', message, 400, { ...(field ? { field } : {}), ...(details ? { details } : {}) });
export const unauthorized = (message = 'authentication required') => new AppError('unauthorized', message, 401);
export const forbidden = (message = 'this resource belongs to another caller') =>
  new AppError('forbidden', message, 403);
export const notFound = (what: string) => new AppError('not_found', `${what} not found`, 404);
export const conflict = (message: string, details?: Record<string, unknown>) =>
  new AppError('conflict', message, 409, details ? { details } : {});
export const unprocessable = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError(code, message, 422, details ? { details } : {});
export const rateLimited = (message: string, retryAfterSeconds: number) =>
  new AppError('rate_limited', message, 429, { details: { retryAfterSeconds } });
export const upstreamUnavailable = (message: string) => new AppError('upstream_unavailable', message, 503);

/** Turns a zod failure into one 400 naming the first offending field (`body.to`), with all issues listed. */
export function fromZodError(error: z.ZodError, location: string): AppError {
  const issues = error.issues.map((issue) => ({
    field: [location, ...issue.path.map(String)].filter(Boolean).join('.'),
    message: issue.message,
  }));
  const first = issues[0] ?? { field: location, message: 'invalid input' };
  return invalidRequest(`${first.field}: ${first.message}`, first.field, { issues });
}

/** Builds the JSON response for an error; unknown errors never leak their message or stack. */
export function errorResponse(c: Context, err: unknown): Response {
  const appError = toAppError(err);
  if (appError.status === 429) {
    const retry = appError.details?.retryAfterSeconds;
    if (typeof retry === 'number') c.header('Retry-After', String(Math.max(1, Math.ceil(retry))));
  }
  return c.json(appError.toEnvelope(), appError.status as ContentfulStatusCode);
}

export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof z.ZodError) return fromZodError(err, 'body');
  // Hono's own HTTPException (e.g. a malformed JSON body) carries a safe status.
  if (err instanceof HTTPException && err.status >= 400 && err.status < 500) {
    return new AppError(
      err.status === 400 ? 'invalid_request' : 'request_rejected',
      err.message || 'bad request',
      err.status,
    );
  }
  return new AppError('internal_error', 'internal error', 500);
}

interface LoggerLike {
  error(obj: object, msg?: string): void;
}

/** Hono `onError`: the envelope for the caller, the full error (with stack) only in the log. */
export function errorHandler(logger?: LoggerLike): ErrorHandler {
  return (err, c) => {
    const appError = toAppError(err);
    if (appError.status >= 500) {
      const log = (c.get('log' as never) as LoggerLike | undefined) ?? logger;
      log?.error({ err }, 'request failed');
    }
    return errorResponse(c, err);
  };
}

export const notFoundHandler: NotFoundHandler = (c) =>
  errorResponse(c, new AppError('not_found', `no route for ${c.req.method} ${c.req.path}`, 404));
