import { z } from 'zod';

/** Thrown when the environment is missing or has a bad value; the message names every offending variable. */
export class ConfigError extends Error {
  readonly problems: { variable: string; message: string }[];
  constructor(problems: { variable: string; message: string }[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Record<string, string | undefined>;

/**
 * Parses the environment once with a zod object whose keys are the variable names.
 * Empty strings count as unset so `FOO=` falls back to the default.
 */
export function loadConfig<S extends z.ZodObject>(schema: S, env: Env = process.env): z.infer<S> {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => {
        const variable = String(issue.path[0] ?? '(config)');
        const raw = input[variable];
        const got = raw === undefined ? 'it is not set' : `got ${JSON.stringify(redactIfSecret(variable, raw))}`;
        return { variable, message: `${issue.message} (${got})` };
      }),
    );
  }
  return result.data;
}

const SECRET_NAME = /SECRET|TOKEN|PASSWORD|KEY|PRIVATE/i;
function redactIfSecret(variable: string, value: string): string {
  return SECRET_NAME.test(variable) ? '[redacted]' : value;
}

/** Building blocks for config schemas, so every service reads env the same way. */
export const env = {
  port: (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback),
  int: (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback),
  url: () => z.url(),
  string: () => z.string().min(1),
  bool: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
      .transform((v) => v === 'true' || v === '1' || v === 'yes')
      .default(fallback),
  list: () =>
    z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      )
      .pipe(z.array(z.string())),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** A hex string of exactly `bytes` bytes, e.g. a 32-byte master key. */
  hexKey: (bytes: number) =>
    z.string().regex(new RegExp(`^(0x)?[0-9a-fA-F]{${bytes * 2}}$`), `expected ${bytes} bytes as hex`),
};
