import type { MiddlewareHandler, ValidationTargets } from 'hono';
import { validator } from 'hono/validator';
import type { z } from 'zod';
import { fromZodError, invalidRequest } from './errors.js';

const LOCATION: Record<keyof ValidationTargets, string> = {
  json: 'body',
  form: 'body',
  query: 'query',
  param: 'path',
  header: 'header',
  cookie: 'cookie',
};

/**
 * Validates one part of the request with a zod schema; a failure is a 400 naming the field
 * (`body.amount: …`). The parsed value is read with `c.req.valid(target)`.
 */
export function validate<Target extends keyof ValidationTargets, Schema extends z.ZodType>(
  target: Target,
  schema: Schema,
): MiddlewareHandler<
  // biome-ignore lint/suspicious/noExplicitAny: Hono's own validator typing uses `any` for the env.
  any,
  string,
  { in: { [K in Target]: z.input<Schema> }; out: { [K in Target]: z.output<Schema> } }
> {
  return validator(target, async (value, c) => {
    if (target === 'json') {
      const type = c.req.header('content-type') ?? '';
      if (!/^application\/([a-z0-9.+-]*\+)?json/i.test(type)) {
        throw invalidRequest('request body must be JSON (Content-Type: application/json)', 'body');
      }
    }
    const result = await schema.safeParseAsync(value);
    if (!result.success) throw fromZodError(result.error, LOCATION[target]);
    return result.data as z.output<Schema>;
    // biome-ignore lint/suspicious/noExplicitAny: see above
  }) as any;
}

/** Reads a JSON body that must be present and parse; bodies over `maxBytes` are refused with 413. */
export function bodyLimit(maxBytes: number): MiddlewareHandler {
  return async (c, next) => {
    const length = Number(c.req.header('content-length') ?? '0');
    if (length > maxBytes) {
      return c.json(
        { error: { code: 'payload_too_large', message: `body exceeds ${maxBytes} bytes`, status: 413, field: 'body' } },
        413,
      );
    }
    await next();
  };
}
