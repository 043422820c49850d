import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** The repository root (this file is stack/src/manifest.ts). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * A service declares itself to the stack in its package.json under `"agentstack"`; `start` runs every
 * package that does, so a new service needs no change here.
 */
const manifestSchema = z.object({
  service: z.string().regex(/^[a-z][a-z0-9-]*$/),
  title: z.string(),
  port: z.object({ env: z.string(), default: z.number().int() }),
  /**
   * Extra ports the service opens (e.g. SMTP), passed as env with their defaults. With `urlEnv`, the port serves
   * HTTP that other services call (e.g. the LLM proxy inside the platform API): every service gets its URL.
   */
  extraPorts: z
    .array(z.object({ env: z.string(), default: z.number().int(), label: z.string(), urlEnv: z.string().optional() }))
    .default([]),
  /** The env var other services read this one's base URL from, e.g. `WALLET_URL`. */
  urlEnv: z.string(),
  health: z.string().default('/v1/health'),
  main: z.string().default('src/main.ts'),
  /** Lower starts first; same order starts together. */
  order: z.number().int().default(50),
  /** Its database in the embedded PostgreSQL; the service gets it as DATABASE_URL. */
  database: z.string().optional(),
  /** Receives x402 payments: gets PAY_TO_ADDRESS (on the devnet, a well-known test account). */
  paid: z.boolean().default(false),
  /** Runs with `--demo` only, or always. */
  when: z.enum(['always', 'demo']).default('always'),
  /** The command line to run instead of `tsx <main> serve` (e.g. a web server), with `{port}` substituted. */
  command: z.array(z.string()).optional(),
  /** How long `start` waits for the health route (a web app may build first). */
  startTimeoutMs: z.number().int().positive().default(90_000),
  /** Environment variable names the service needs from the platform (URLs of other services are always given). */
  env: z.record(z.string(), z.string()).default({}),
});

export type ServiceManifest = z.infer<typeof manifestSchema> & { dir: string; packageName: string };

const WORKSPACE_GROUPS = ['services', 'platform'];

export function discoverServices(root = repoRoot): ServiceManifest[] {
  const found: ServiceManifest[] = [];
  for (const group of WORKSPACE_GROUPS) {
    const groupDir = join(root, group);
    if (!existsSync(groupDir)) continue;
    for (const name of readdirSync(groupDir).sort()) {
      const pkgPath = join(groupDir, name, 'package.json');
      if (!existsSync(pkgPath)) continue;
      const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { name: string; agentstack?: unknown };
      if (!pkg.agentstack) continue;
      const parsed = manifestSchema.safeParse(pkg.agentstack);
      if (!parsed.success) {
        throw new Error(`${pkgPath}: bad "agentstack" manifest: ${parsed.error.issues[0]?.message}`);
      }
      found.push({ ...parsed.data, dir: join(groupDir, name), packageName: pkg.name });
    }
  }
  return found.sort((a, b) => a.order - b.order || a.service.localeCompare(b.service));
}

/** `wallet` → `WALLET`, `llm-proxy` → `LLM_PROXY`. */
export const envPrefix = (service: string) => service.toUpperCase().replace(/-/g, '_');
