import type { MiddlewareHandler } from 'hono';
import { type DestinationStream, type Logger, pino } from 'pino';
import { randomToken } from './ids.js';

export type { Logger };

/** Paths pino blanks out wherever they appear, so a secret passed to a log call by mistake stays out. */
const REDACT = [
  'password',
  'secret',
  'privateKey',
  'private_key',
  'token',
  'claimToken',
  'agentToken',
  'apiKey',
  'authorization',
  'sealedKey',
  'sealed_key',
  'webhookSecret',
  'masterSecret',
  'mnemonic',
  '*.password',
  '*.secret',
  '*.privateKey',
  '*.private_key',
  '*.token',
  '*.claimToken',
  '*.agentToken',
  '*.apiKey',
  '*.authorization',
  '*.sealedKey',
  '*.sealed_key',
  '*.webhookSecret',
  '*.masterSecret',
  '*.mnemonic',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["payment-signature"]',
  'req.headers["x-claim-token"]',
  'headers["x-claim-token"]',
  'headers.authorization',
  'headers.cookie',
];

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Where lines go; defaults to stdout. Tests pass a stream to read what was logged. */
  destination?: DestinationStream;
}

/** Structured JSON logs (one object per line) with secrets redacted. */
export function createLogger({ name, level = 'info', destination }: LoggerOptions): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: REDACT, censor: '[redacted]' },
      base: { service: name },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export type CoreVariables = { requestId: string; log: Logger };

const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{8,100}$/;
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * Gives every request an id (kept from `X-Request-Id` when a caller or another service sent a sane one),
 * echoes it back, and logs one line per request with a child logger that carries the id.
 */
export function requestLogger(logger: Logger): MiddlewareHandler<{ Variables: CoreVariables }> {
  return async (c, next) => {
    const incoming = c.req.header(REQUEST_ID_HEADER);
    const requestId = incoming && SAFE_REQUEST_ID.test(incoming) ? incoming : `req_${randomToken(20)}`;
    const log = logger.child({ requestId });
    c.set('requestId', requestId);
    c.set('log', log);
    c.header(REQUEST_ID_HEADER, requestId);
    const started = performance.now();
    await next();
    // A middleware may have replaced the response after the header was set; make sure it is there.
    if (!c.res.headers.has(REQUEST_ID_HEADER)) {
      try {
        c.res.headers.set(REQUEST_ID_HEADER, requestId);
      } catch {
        // immutable headers (a proxied response): the id is still in the log line
      }
    }
    const ms = Math.round((performance.now() - started) * 10) / 10;
    const status = c.res.status;
    const line = { method: c.req.method, path: c.req.path, status, ms };
    if (status >= 500) log.error(line, 'request');
    else log.info(line, 'request');
  };
}
