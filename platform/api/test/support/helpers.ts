import { createHmac, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, freePort, listenOn, type RunningServer } from '@agentstack/core';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import { loadPlatformConfig } from '../../src/config.js';
import { migrationsDir, type PlatformDB } from '../../src/db.js';
import { createPlatform, type Platform } from '../../src/platform.js';
import type { TenantRuntimeRequester } from '../../src/runtime-requester.js';

/** Remembers every runtime request; a test can make the next calls of one kind fail. */
export class RecordingRequester implements TenantRuntimeRequester {
  readonly calls: { kind: 'create' | 'stop' | 'start' | 'destroy'; tenantId: string; apiKey?: string }[] = [];
  failNext: Partial<Record<'create' | 'stop' | 'start' | 'destroy', Error>> = {};

  private record(kind: 'create' | 'stop' | 'start' | 'destroy', tenantId: string, apiKey?: string) {
    this.calls.push({ kind, tenantId, ...(apiKey ? { apiKey } : {}) });
    const failure = this.failNext[kind];
    if (failure) {
      delete this.failNext[kind];
      throw failure;
    }
  }
  async create(r: { tenantId: string; apiKey: string }) {
    this.record('create', r.tenantId, r.apiKey);
  }
  async stop(r: { tenantId: string }) {
    this.record('stop', r.tenantId);
  }
  async start(r: { tenantId: string }) {
    this.record('start', r.tenantId);
  }
  async destroy(r: { tenantId: string }) {
    this.record('destroy', r.tenantId);
  }
  of(kind: 'create' | 'stop' | 'start' | 'destroy') {
    return this.calls.filter((c) => c.kind === kind);
  }
}

export interface TestPlatform {
  platform: Platform;
  server: RunningServer;
  url: string;
  database: TestDatabase<PlatformDB>;
  requester: RecordingRequester;
  dataDir: string;
  /** Log lines written so far (JSON objects). */
  logs: Record<string, unknown>[];
  /** Raw log text, to check nothing secret was written. */
  logText(): string;
  browser(ip?: string): Browser;
  stop(): Promise<void>;
}

/** A logger that writes into memory, so a test can read what was logged (and check no secret was). */
export function captureLog(): { log: ReturnType<typeof createLogger>; text(): string; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { log: createLogger({ name: 'platform-api', level: 'info', destination }), text: () => lines.join(''), lines };
}

let nextIp = 1;
/** A fresh client address for each browser (loopback is a trusted proxy, so X-Forwarded-For is believed). */
export const freshIp = () => {
  const n = nextIp++;
  return `10.77.${Math.floor(n / 250)}.${(n % 250) + 1}`;
};

/**
 * The platform API on a free port over a fresh, migrated test database, with its public URL set to its own
 * address (so Better Auth's origin checks and OAuth callbacks point at it), a temp data dir, and a requester
 * that records instead of starting runtimes.
 */
export async function startTestPlatform(
  env: Record<string, string> = {},
  options: { port?: number } = {},
): Promise<TestPlatform> {
  const database = await createTestDatabase<PlatformDB>({ migrationsDir });
  const dataDir = await mkdtemp(join(tmpdir(), 'platform-api-test-'));
  await chmod(dataDir, 0o755);
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const config = loadPlatformConfig({
    DATABASE_URL: database.url,
    PLATFORM_PUBLIC_URL: url,
    SERVICE_DATA_DIR: dataDir,
    BETTER_AUTH_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'info',
    ...env,
  });
  const { log, lines } = captureLog();
  const requester = new RecordingRequester();
  const platform = await createPlatform(config, { log, requester });
  const server = await listenOn(platform.app, { port });
  return {
    platform,
    server,
    url,
    database,
    requester,
    dataDir,
    get logs() {
      return lines.flatMap((l) => l.split('\n').filter(Boolean)).map((l) => JSON.parse(l));
    },
    logText: () => lines.join(''),
    browser: (ip = freshIp()) => new Browser(url, ip),
    stop: async () => {
      await server.close();
      await platform.close();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A minimal browser: a cookie jar per host, `Origin` on every request to the platform (as a page of that
 * origin would send), manual redirects, and a client address the platform sees through X-Forwarded-For.
 */
export class Browser {
  private readonly jar = new Map<string, Map<string, string>>();
  constructor(
    readonly origin: string,
    readonly ip: string,
  ) {}

  cookies(host = new URL(this.origin).host): Map<string, string> {
    let cookies = this.jar.get(host);
    if (!cookies) {
      cookies = new Map();
      this.jar.set(host, cookies);
    }
    return cookies;
  }

  cookieHeader(host = new URL(this.origin).host): string {
    return [...this.cookies(host)].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async fetch(pathOrUrl: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
    const url = new URL(pathOrUrl, this.origin);
    const headers = new Headers(init.headers);
    const cookie = this.cookieHeader(url.host);
    if (cookie) headers.set('cookie', cookie);
    if (url.origin === this.origin) {
      if (!headers.has('origin')) headers.set('origin', this.origin);
      headers.set('x-forwarded-for', this.ip);
    }
    let body = init.body;
    if (init.json !== undefined) {
      headers.set('content-type', 'application/json');
      body = JSON.stringify(init.json);
    }
    const { json: _json, ...rest } = init;
    const response = await fetch(url, { ...rest, headers, body, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) this.storeCookie(url.host, line);
    return response;
  }

  /** Follows redirects (across hosts) from a first response; returns the last response and the URLs visited. */
  async follow(first: Response, from: string, limit = 20): Promise<{ response: Response; visited: string[] }> {
    let response = first;
    let current = from;
    const visited: string[] = [];
    for (let i = 0; i < limit && response.status >= 300 && response.status < 400; i++) {
      const location = response.headers.get('location');
      if (!location) break;
      current = new URL(location, current).toString();
      visited.push(current);
      response = await this.fetch(current);
    }
    return { response, visited };
  }

  private storeCookie(host: string, line: string) {
    const [pair, ...attributes] = line.split(';');
    const index = pair!.indexOf('=');
    const name = pair!.slice(0, index).trim();
    const value = pair!.slice(index + 1).trim();
    const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '';
    if (expired) this.cookies(host).delete(name);
    else this.cookies(host).set(name, value);
  }
}

export interface SignedUp {
  browser: Browser;
  email: string;
  password: string;
  userId: string;
}

/** Signs up by email and password; the browser holds the session afterwards. */
export async function signUp(
  t: TestPlatform,
  email = `u${randomBytes(4).toString('hex')}@example.com`,
): Promise<SignedUp> {
  const browser = t.browser();
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const res = await browser.fetch('/api/auth/sign-up/email', {
    method: 'POST',
    json: { email, password, name: 'Test User' },
  });
  if (res.status !== 200) throw new Error(`sign-up failed: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { user: { id: string } };
  return { browser, email, password, userId: body.user.id };
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) from a base32 secret, as an authenticator app computes it. */
export function totp(secretBase32: string, at = Date.now()): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const char of secretBase32.replace(/=+$/, '').toUpperCase()) {
    const value = alphabet.indexOf(char);
    if (value < 0) throw new Error(`bad base32 character ${char}`);
    bits += value.toString(2).padStart(5, '0');
  }
  const key = Buffer.from((bits.match(/.{8}/g) ?? []).map((b) => Number.parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const hmac = createHmac('sha1', key).update(counter).digest();
  const offset = hmac[hmac.length - 1]! & 0x0f;
  const code = (hmac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return code.toString().padStart(6, '0');
}

export const json = async <T = any>(res: Response): Promise<T> => (await res.json()) as T;
