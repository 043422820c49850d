import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import type { z } from 'zod';
import { discoverServices, repoRoot, type ServiceManifest } from '../src/manifest.js';

/**
 * deploy/compose.yaml against the services themselves: every service is there, every variable its config
 * schema requires is set, the values pass the service's own config loader, secrets only come from the
 * environment, and deploy/env.example lists every variable the file reads.
 */

const deployDir = join(repoRoot, 'deploy');
const composeText = readFileSync(join(deployDir, 'compose.yaml'), 'utf8');

interface ComposeService {
  build?: { context?: string; dockerfile?: string; args?: Record<string, string> };
  environment?: Record<string, string | number | boolean | null>;
  ports?: (string | number)[];
  volumes?: string[];
  healthcheck?: { test?: string[] };
}
const compose = YAML.parse(composeText, { merge: true }) as { services: Record<string, ComposeService> };

/** Dummy values for the variables compose.yaml requires (`${NAME:?…}`), in the shapes the services accept. */
const DUMMY: Record<string, string> = {
  POSTGRES_PASSWORD: 'dummy-postgres-password',
  PAY_TO_ADDRESS: '0x00000000000000000000000000000000000000a1',
  FACILITATOR_PRIVATE_KEY: `0x${'11'.repeat(32)}`,
  WALLET_MASTER_SECRET: '22'.repeat(32),
  WALLET_GAS_PRIVATE_KEY: `0x${'33'.repeat(32)}`,
  WALLET_OPERATOR_TOKEN: 'dummy-operator-token-0123456789',
  RELAY_MASTER_KEY: '44'.repeat(32),
  RELAY_DOMAINS: 'relay.example.com',
  HETZNER_TOKEN: 'dummy-hetzner-token',
  SPAWN_MASTER_KEY: '55'.repeat(32),
  SPAWN_ADMIN_TOKEN: 'dummy-admin-token-0123456789',
  PLATFORM_PUBLIC_URL: 'https://app.example.com',
  BETTER_AUTH_SECRET: 'dummy-better-auth-secret-0123456789abcdef',
};

/**
 * Required in production by the services' code beyond their schemas (a schema default or `.optional()` is
 * for development): without these a service refuses to start on Base, or falls back to a key file in a
 * container directory.
 */
const PRODUCTION_REQUIRED: Record<string, string[]> = {
  wallet: ['WALLET_MASTER_SECRET', 'WALLET_GAS_PRIVATE_KEY', 'WALLET_OPERATOR_TOKEN'],
  relay: ['RELAY_MASTER_KEY', 'RELAY_DOMAINS'],
  spawn: ['SPAWN_PROVIDER', 'HETZNER_TOKEN', 'SPAWN_MASTER_KEY', 'SPAWN_ADMIN_TOKEN'],
  'platform-api': ['NODE_ENV', 'BETTER_AUTH_SECRET', 'PLATFORM_PUBLIC_URL', 'TENANT_DATA_DIR'],
};

/** Variables compose sets that no config schema reads (yet). */
const NOT_IN_SCHEMA = new Set([
  'REDIS_URL', // the event bus's Redis (packages/db createEventBus), not wired into the services' configs yet
  'TENANT_RUNTIME_BACKEND', // being added to the platform API's config with the Docker backend
]);

/** The only published ports that face the internet directly (everything else sits behind the TLS proxy). */
const PUBLIC_PORTS: Record<string, number[]> = { relay: [2525] };

const SECRET_NAME = /SECRET|TOKEN|PASSWORD|KEY|PRIVATE/i;
const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g;

/** Compose interpolation (`${X}`, `${X:-default}`, `${X-default}`, `${X:?message}`) with `vars` as the environment. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(REFERENCE, (_match, name: string, op: string | undefined, arg: string) => {
    const set = vars[name];
    if (op === ':?' || op === '?') {
      if (set === undefined || (op === ':?' && set === '')) throw new Error(`${name}: ${arg}`);
      return set;
    }
    if (op === ':-') return set ? set : arg;
    if (op === '-') return set ?? arg;
    return set ?? '';
  });
}

/** The value is set whatever the operator does: a literal, a default, or compose refuses to start without it. */
function setWithoutOperator(value: string): boolean {
  try {
    return interpolate(value, {}) !== '';
  } catch {
    return true; // `${X:?…}`
  }
}

const environmentOf = (name: string): Record<string, string> =>
  Object.fromEntries(
    Object.entries(compose.services[name]?.environment ?? {}).map(([key, value]) => [key, String(value ?? '')]),
  );
const resolvedEnvironmentOf = (name: string) =>
  Object.fromEntries(Object.entries(environmentOf(name)).map(([key, value]) => [key, interpolate(value, DUMMY)]));

/** The service's zod env schema and loader from its src/config.ts (`<x>ConfigSchema`, `load<X>Config`). */
async function configModule(service: ServiceManifest) {
  const file = join(service.dir, 'src', 'config.ts');
  if (!existsSync(file)) return undefined;
  const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const schemaName = Object.keys(module).find((k) => /ConfigSchema$/.test(k));
  const loaderName = Object.keys(module).find((k) => /^load\w*Config$/.test(k));
  if (!schemaName || !loaderName) throw new Error(`${file}: no *ConfigSchema and load*Config exports`);
  return {
    schema: module[schemaName] as z.ZodObject,
    load: module[loaderName] as (source: Record<string, string | undefined>) => unknown,
  };
}

/** Keys the schema cannot do without: no default, not optional (parsing "unset" fails). */
const requiredKeys = (schema: z.ZodObject) =>
  Object.entries(schema.shape)
    .filter(([, field]) => !(field as z.ZodType).safeParse(undefined).success)
    .map(([key]) => key);

const services = discoverServices().filter((s) => s.when === 'always');

describe('deploy/compose.yaml', () => {
  it('runs every service of the workspace, built from its own directory', () => {
    for (const service of services) {
      const entry = compose.services[service.service];
      expect(entry, `compose service "${service.service}"`).toBeDefined();
      if (entry?.build?.dockerfile === 'deploy/Dockerfile.service') {
        expect(entry.build.args?.SERVICE).toBe(relative(repoRoot, service.dir));
      }
    }
    // The web app (platform/web) may not be in this checkout yet; compose runs it regardless.
    expect(compose.services.web?.build?.dockerfile).toBe('deploy/Dockerfile.web');
    expect(environmentOf('web').PLATFORM_API_URL).toBe('http://platform-api:3001');
  });

  it.each(services.map((s) => [s.service, s] as const))(
    '%s: every required variable is set and its config loads',
    async (name, service) => {
      const config = await configModule(service);
      if (!config) return;
      const environment = environmentOf(name);
      const resolved = resolvedEnvironmentOf(name);
      const needed = [...requiredKeys(config.schema), ...(PRODUCTION_REQUIRED[name] ?? [])];
      for (const key of needed) {
        expect(environment[key], `${name}: ${key} is not set in compose.yaml`).toBeDefined();
        expect(
          setWithoutOperator(environment[key] as string),
          `${name}: ${key} can end up empty: require it with \${${key}:?…}`,
        ).toBe(true);
      }
      const known = new Set(Object.keys(config.schema.shape));
      const unknown = Object.keys(environment).filter((key) => !known.has(key) && !NOT_IN_SCHEMA.has(key));
      expect(unknown, `${name}: variables its config does not read`).toEqual([]);
      // Every listener on all interfaces of the container, on its default port (the one compose publishes).
      for (const port of [service.port, ...service.extraPorts]) {
        expect(resolved[port.env], `${name}: ${port.env}`).toBe(String(port.default));
        const hostKey = port.env.replace(/_PORT$/, '_HOST');
        if (known.has(hostKey)) expect(resolved[hostKey], `${name}: ${hostKey}`).toBe('0.0.0.0');
      }
      expect(() => config.load(resolved), `${name}: its config loader refuses compose's values`).not.toThrow();
    },
  );

  it('binds published ports to 127.0.0.1, except the ones that face the internet', () => {
    for (const [name, entry] of Object.entries(compose.services)) {
      for (const port of entry.ports ?? []) {
        const spec = interpolate(String(port), DUMMY);
        const target = Number(spec.split(':').pop());
        if (PUBLIC_PORTS[name]?.includes(target)) continue;
        expect(spec, `${name}: ${port}`).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
      }
    }
  });

  it('checks each service with its own health route', () => {
    for (const service of services) {
      const test = compose.services[service.service]?.healthcheck?.test?.join(' ') ?? '';
      expect(test, service.service).toContain(`:${service.port.default}${service.health}'`);
    }
    expect(compose.services.web?.healthcheck?.test?.join(' ')).toContain(':3000/healthz');
  });

  it('takes secrets from the environment only', () => {
    for (const name of Object.keys(compose.services)) {
      for (const [key, value] of Object.entries(environmentOf(name))) {
        if (!SECRET_NAME.test(key)) continue;
        // `${X:?…}` or `${X:-}`: never a literal, never a default.
        expect(value, `${name}: ${key}`).toMatch(/^\$\{[A-Z0-9_]+(:\?[^}]*|:-)?\}$/);
      }
    }
  });

  it('spawn uses Hetzner; the platform API runs tenant runtimes on the Docker engine, directories at host paths', () => {
    expect(resolvedEnvironmentOf('spawn').SPAWN_PROVIDER).toBe('hetzner');
    const environment = resolvedEnvironmentOf('platform-api');
    expect(environment.TENANT_RUNTIME_BACKEND).toBe('docker');
    const volumes = (compose.services['platform-api']?.volumes ?? []).map((v) => interpolate(v, DUMMY));
    expect(volumes).toContain('/var/run/docker.sock:/var/run/docker.sock');
    for (const dir of [environment.TENANT_DATA_DIR, environment.SERVICE_DATA_DIR]) {
      expect(dir).toMatch(/^\//);
      expect(volumes, `${dir} mounted at the same path`).toContain(`${dir}:${dir}`);
    }
  });
});

describe('deploy/env.example', () => {
  const lines = readFileSync(join(deployDir, 'env.example'), 'utf8').split('\n');
  const assignments = lines.filter((line) => /^[A-Z][A-Z0-9_]*=/.test(line));

  it('lists every variable compose.yaml reads, with an empty value', () => {
    const listed = new Set(assignments.map((line) => line.slice(0, line.indexOf('='))));
    const referenced = new Set([...composeText.matchAll(REFERENCE)].map((m) => m[1] as string));
    expect([...referenced].filter((name) => !listed.has(name))).toEqual([]);
    expect([...listed].filter((name) => !referenced.has(name))).toEqual([]);
    expect(assignments.filter((line) => !line.endsWith('='))).toEqual([]);
  });

  it('has a dummy value here for every variable compose.yaml requires', () => {
    const required = [...composeText.matchAll(REFERENCE)].filter((m) => m[2] === ':?').map((m) => m[1] as string);
    expect(required.filter((name) => !(name in DUMMY))).toEqual([]);
  });
});
