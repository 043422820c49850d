import { BlockList, isIP } from 'node:net';
import { AppError, type CoreVariables, forbidden, unauthorized } from '@agentstack/core';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import { authenticateApiKey, looksLikeApiKey } from './api-keys.js';
import { type Auth, type AuthSession, CLIENT_IP_HEADER } from './auth.js';
import { SOCKET_TENANT_HEADER } from './orchestrator/gateway.js';
import type { ServiceTokens } from './service-token.js';
import type { PlatformStore, TenantRow } from './store.js';

/** Who is calling: a signed-in person, or another platform component acting for one tenant. */
export type Caller =
  | { kind: 'user'; user: AuthSession['user']; session: AuthSession['session'] }
  | { kind: 'service'; subject: string }
  | { kind: 'apiKey'; keyId: string };

export type PlatformVariables = CoreVariables & {
  caller: Caller;
  tenant: TenantRow;
  clientIp: string;
};
export type PlatformEnv = { Variables: PlatformVariables };

const normalize = (ip: string) => (ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip);

/** Addresses and CIDR ranges (`10.0.0.0/8`) of the proxies in front of us. */
export function trustedProxyList(entries: string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, prefix] = entry.split('/');
    const family = isIP(address ?? '');
    if (!address || family === 0) throw new Error(`PLATFORM_TRUSTED_PROXIES: ${entry} is not an IP address or range`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return list;
}

const isTrusted = (list: BlockList, ip: string) => {
  const family = isIP(ip);
  return family !== 0 && list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
};

/**
 * The client's address: the socket peer, unless that peer is a trusted proxy (the web app), in which case
 * the rightmost X-Forwarded-For hop that is not itself a trusted proxy. A client can prepend whatever it
 * likes to X-Forwarded-For; it cannot change what our proxy appended or the socket address.
 */
export function clientAddress(trusted: BlockList): MiddlewareHandler<PlatformEnv> {
  return async (c, next) => {
    let peer: string | undefined;
    try {
      peer = getConnInfo(c).remote.address;
    } catch {
      peer = undefined; // not served by @hono/node-server (in-process requests)
    }
    let ip = normalize(peer ?? '127.0.0.1');
    if (isTrusted(trusted, ip)) {
      const hops = (c.req.header('x-forwarded-for') ?? '')
        .split(',')
        .map((s) => normalize(s.trim()))
        .filter(Boolean);
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = hops[i]!;
        if (isIP(hop) === 0) break;
        ip = hop;
        if (!isTrusted(trusted, hop)) break;
      }
    }
    c.set('clientIp', ip);
    await next();
  };
}

/**
 * Serves Better Auth under /api/auth/*, telling it the client address through a header only we set
 * (rate limits and session records key on it), and adding the standard `Retry-After` to its 429.
 */
export function authRoutes(auth: Auth): (c: Context<PlatformEnv>) => Promise<Response> {
  return async (c) => {
    const headers = new Headers(c.req.raw.headers);
    headers.set(CLIENT_IP_HEADER, c.get('clientIp'));
    const request = new Request(c.req.raw, { headers });
    const response = await auth.handler(request);
    if (response.status === 429 && !response.headers.has('retry-after')) {
      const retry = response.headers.get('x-retry-after') ?? '1';
      const copy = new Response(response.body, response);
      copy.headers.set('Retry-After', retry);
      return copy;
    }
    return response;
  };
}

/**
 * Cookie-authenticated requests that change something must come from one of our origins. Browsers send
 * `Origin` on every such request; a cross-site page cannot forge it. Callers without cookies (services,
 * scripts) are not a CSRF vector and pass. Better Auth checks its own routes the same way.
 */
export function sameOriginForCookies(trustedOrigins: string[]): MiddlewareHandler<PlatformEnv> {
  const allowed = new Set(trustedOrigins);
  return async (c, next) => {
    const method = c.req.method;
    if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS' && c.req.header('cookie')) {
      const origin = c.req.header('origin');
      const site = c.req.header('sec-fetch-site');
      const crossSite = origin ? !allowed.has(origin) : site !== undefined && site !== 'same-origin' && site !== 'none';
      if (crossSite) throw new AppError('cross_origin_refused', 'request from an untrusted origin', 403);
    }
    await next();
  };
}

interface CallerDeps {
  auth: Auth;
  store: PlatformStore;
  serviceTokens: ServiceTokens;
}

/** Refuses a tenant that may not act (suspended) with a clear 403. */
function assertTenantUsable(tenant: TenantRow): void {
  if (tenant.status === 'suspended') {
    throw new AppError('account_suspended', 'this account is suspended', 403, {
      ...(tenant.status_reason ? { details: { reason: tenant.status_reason } } : {}),
    });
  }
}

async function fromSession(c: Context<PlatformEnv>, { auth, store }: CallerDeps): Promise<boolean> {
  const found = await auth.api.getSession({ headers: c.req.raw.headers });
  if (!found) return false;
  const { user, session } = found;
  if (user.banned && (!user.banExpires || new Date(user.banExpires) > new Date())) {
    throw new AppError('account_banned', 'this account is banned', 403, {
      ...(user.banReason ? { details: { reason: user.banReason } } : {}),
    });
  }
  const tenant = await store.findTenantOfUser(user.id);
  if (!tenant) throw new AppError('no_tenant', 'this account has no tenant', 403);
  assertTenantUsable(tenant);
  c.set('caller', { kind: 'user', user, session });
  c.set('tenant', tenant);
  return true;
}

async function fromServiceToken(c: Context<PlatformEnv>, token: string, deps: CallerDeps): Promise<void> {
  const claims = await deps.serviceTokens.verify(token);
  if (!claims) throw unauthorized('service token is invalid or expired');
  const tenant = await deps.store.findTenant(claims.tenantId);
  if (!tenant) throw unauthorized('service token names an unknown tenant');
  assertTenantUsable(tenant);
  c.set('caller', { kind: 'service', subject: claims.subject });
  c.set('tenant', tenant);
}

async function fromApiKey(c: Context<PlatformEnv>, key: string, { store }: CallerDeps): Promise<void> {
  const identity = await authenticateApiKey(store, key);
  if (!identity) throw unauthorized('API key is invalid or revoked');
  const tenant = await store.findTenant(identity.tenantId);
  if (!tenant) throw unauthorized('API key is invalid or revoked');
  assertTenantUsable(tenant);
  c.set('caller', { kind: 'apiKey', keyId: identity.keyId });
  c.set('tenant', tenant);
}

const bearer = (c: Context) => {
  const header = c.req.header('authorization');
  return header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
};

/**
 * The gate in front of every /api/* route that `isPublic` does not name: a session cookie, a service token
 * or a tenant API key (`Authorization: Bearer …`) must identify a caller with a usable tenant, else 401/403.
 * Routes then say which kinds of caller they accept (`only`), so a new route is never public by accident.
 */
export function authenticate(deps: CallerDeps, isPublic: (c: Context) => boolean): MiddlewareHandler<PlatformEnv> {
  return async (c, next) => {
    // Requests from a tenant's runtime come through its gateway socket, stamped with the tenant: they may
    // act only as that tenant, and never on the account routes (sign-up, sign-in) meant for people.
    const socketTenant = c.req.header(SOCKET_TENANT_HEADER);
    if (socketTenant && c.req.path.startsWith('/api/auth')) {
      throw forbidden('account routes are not available to agent runtimes');
    }
    if (isPublic(c)) return next();
    const token = bearer(c);
    if (token && looksLikeApiKey(token)) await fromApiKey(c, token, deps);
    else if (token) await fromServiceToken(c, token, deps);
    else if (!(await fromSession(c, deps))) throw unauthorized('sign in first');
    if (socketTenant && c.get('tenant')?.id !== socketTenant) {
      throw forbidden("these credentials belong to another tenant than this runtime's");
    }
    await next();
  };
}

const CALLER_NAMES: Record<Caller['kind'], string> = {
  user: 'a signed-in user',
  service: 'a service token',
  apiKey: 'a tenant API key',
};

/** Accepts only the given kinds of caller (after `authenticate`). */
export function only(...kinds: Caller['kind'][]): MiddlewareHandler<PlatformEnv> {
  return async (c, next) => {
    if (!kinds.includes(c.get('caller').kind)) {
      throw forbidden(`this route needs ${kinds.map((k) => CALLER_NAMES[k]).join(' or ')}`);
    }
    await next();
  };
}

/** A signed-in user whose roles include `admin`. */
export function adminOnly(): MiddlewareHandler<PlatformEnv> {
  return async (c, next) => {
    const caller = c.get('caller');
    const roles = caller.kind === 'user' ? String(caller.user.role ?? '').split(',') : [];
    if (!roles.map((r) => r.trim()).includes('admin')) throw forbidden('admins only');
    await next();
  };
}
