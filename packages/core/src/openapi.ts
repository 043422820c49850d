import { z } from 'zod';

/**
 * One description per route, written once beside the route: the same zod schemas validate the request,
 * and generate `/openapi.json` and `/llms.txt`, so the documents cannot drift from the code.
 */
export interface RouteSpec {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** Hono-style path: `/v1/wallets/:address`. */
  path: string;
  summary: string;
  description?: string;
  /** Human price, e.g. `$0.001`, `$0.001 per day`, `the amount paid`; omitted for free routes. */
  price?: string;
  /** When a paid route settles: after the handler succeeded, or before the (irreversible) effect. */
  settlement?: 'after-success' | 'first';
  /** Who may call: `anyone`, `x402 payer (owner)`, `signed request`, … */
  auth?: string;
  idempotent?: boolean;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  response?: z.ZodType;
  responseStatus?: number;
}

export interface ApiInfo {
  title: string;
  version: string;
  description: string;
  /** Extra prose appended to llms.txt (payment how-to, limits). */
  guide?: string;
}

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return rest;
}

const openApiPath = (path: string) => path.replace(/:([A-Za-z_]+)/g, '{$1}');

function parameters(schema: z.ZodType | undefined, where: 'path' | 'query') {
  if (!schema) return [];
  const json = jsonSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || (json.required ?? []).includes(name),
    schema: s,
  }));
}

export function buildOpenApi(info: ApiInfo, routes: RouteSpec[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const status = String(route.responseStatus ?? (route.method === 'post' ? 201 : 200));
    const operation: Record<string, unknown> = {
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      parameters: [...parameters(route.params, 'path'), ...parameters(route.query, 'query')],
      responses: {
        [status]: {
          description: 'success',
          ...(route.response
            ? { content: { 'application/json': { schema: jsonSchema(route.response, 'output') } } }
            : {}),
        },
        default: {
          description: 'error envelope',
          content: { 'application/json': { schema: jsonSchema(errorEnvelopeSchema, 'output') } },
        },
      },
      ...(route.price ? { 'x-price': route.price, 'x-settlement': route.settlement ?? 'after-success' } : {}),
      ...(route.auth ? { 'x-auth': route.auth } : {}),
      ...(route.idempotent ? { 'x-idempotency-key': 'honoured' } : {}),
    };
    if (route.body) {
      operation.requestBody = {
        required: true,
        content: { 'application/json': { schema: jsonSchema(route.body, 'input') } },
      };
    }
    const path = openApiPath(route.path);
    paths[path] = { ...(paths[path] ?? {}), [route.method]: operation };
  }
  return {
    openapi: '3.1.0',
    info: { title: info.title, version: info.version, description: info.description },
    paths,
  };
}

export const errorEnvelopeSchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    status: z.number().int(),
    field: z.string().optional(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});

function describeShape(schema: z.ZodType | undefined): string {
  if (!schema) return '';
  return JSON.stringify(jsonSchema(schema, 'input'));
}

/** A plain-text guide an agent can read in one go: every route, its price, settlement order and shapes. */
export function buildLlmsTxt(info: ApiInfo, routes: RouteSpec[]): string {
  const lines: string[] = [`# ${info.title}`, '', `> ${info.description}`, ''];
  if (info.guide) lines.push(info.guide.trim(), '');
  lines.push('## Routes', '');
  for (const route of routes) {
    const price = route.price
      ? `${route.price}, settles ${route.settlement === 'first' ? 'before the effect (irreversible)' : 'only if the call succeeds'}`
      : 'free';
    lines.push(`### ${route.method.toUpperCase()} ${route.path} — ${price}`);
    lines.push(route.summary);
    if (route.description) lines.push(route.description);
    if (route.auth) lines.push(`Caller: ${route.auth}.`);
    if (route.idempotent) lines.push('Honours Idempotency-Key (scoped to caller and route).');
    if (route.query) lines.push(`Query: ${describeShape(route.query)}`);
    if (route.body) lines.push(`Body: ${describeShape(route.body)}`);
    if (route.response) lines.push(`Response: ${JSON.stringify(jsonSchema(route.response, 'output'))}`);
    lines.push('');
  }
  lines.push('## Errors', '', 'Every error is `{"error": {"code", "message", "status", "field"?}}`.', '');
  return lines.join('\n');
}
