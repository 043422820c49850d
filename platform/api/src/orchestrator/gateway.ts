import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { type Logger, listenOn, listenRelay, type SocketRelay } from '@agentstack/core';
import { createEgressProxy, type EgressProxy, type EgressProxyOptions } from '@agentstack/egress';

/** Where the gateway directory appears inside a tenant, and the loopback ports the runtime bridges there. */
export const INSIDE = {
  dir: '/run/agentsquads',
  llmSocket: '/run/agentsquads/llm.sock',
  platformSocket: '/run/agentsquads/platform.sock',
  egressSocket: '/run/agentsquads/egress.sock',
  runtimeSocket: '/run/agentsquads/runtime.sock',
  llmPort: 8090,
  platformPort: 3001,
  egressPort: 3128,
} as const;

/**
 * The environment that points a runtime at its gateway: the three sockets bridged to loopback ports inside
 * (RUNTIME_BRIDGES), the URLs that use them, and where the runtime itself listens.
 */
export function gatewayRuntimeEnv(): Record<string, string> {
  const proxy = `http://127.0.0.1:${INSIDE.egressPort}`;
  return {
    RUNTIME_SOCKET: INSIDE.runtimeSocket,
    RUNTIME_BRIDGES: [
      `127.0.0.1:${INSIDE.llmPort}=${INSIDE.llmSocket}`,
      `127.0.0.1:${INSIDE.platformPort}=${INSIDE.platformSocket}`,
      `127.0.0.1:${INSIDE.egressPort}=${INSIDE.egressSocket}`,
    ].join(','),
    LLM_PROXY_URL: `http://127.0.0.1:${INSIDE.llmPort}/v1`,
    PLATFORM_API_URL: `http://127.0.0.1:${INSIDE.platformPort}`,
    HTTP_PROXY: proxy,
    HTTPS_PROXY: proxy,
    http_proxy: proxy,
    https_proxy: proxy,
    // Loopback is reached directly: inside it holds only the bridges and the tenant's own servers (the
    // proxy would refuse it anyway). By host, not host:port: curl ignores entries with a port.
    NO_PROXY: '127.0.0.1,localhost,::1',
    no_proxy: '127.0.0.1,localhost,::1',
  };
}

/** Every address of this machine's interfaces (what `deny` keeps tenants away from). */
export function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .map((a) => a?.address)
    .filter((a): a is string => typeof a === 'string' && !a.includes('%'));
}

export interface TcpTarget {
  host: string;
  port: number;
}

/** An HTTP app served in this process on the tenant's socket: every request is stamped with the tenant. */
export interface AppTarget {
  app: () => { fetch: (request: Request) => Response | Promise<Response> };
}

export type GatewayTarget = TcpTarget | AppTarget;

/**
 * Set on every request that came in through a tenant's socket (any value a client sent is replaced): the
 * platform API and the LLM proxy refuse credentials of any other tenant on it. Identity comes from the socket.
 */
export const SOCKET_TENANT_HEADER = 'x-agentsquads-socket-tenant';

/** The request as the app sees it: stamped with the socket's tenant, no client-claimed forwarding headers. */
export function stampTenant(request: Request, tenantId: string): Request {
  const headers = new Headers(request.headers);
  for (const name of ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip', 'forwarded']) {
    headers.delete(name);
  }
  headers.set(SOCKET_TENANT_HEADER, tenantId);
  return new Request(request, { headers });
}

export interface TenantGatewayOptions {
  /** Host directory holding one directory per tenant; created root-only (0711). */
  rootDir: string;
  /** In production the platform's own apps (`AppTarget`: identity from the socket); TCP pipes in tests. */
  llmProxy: GatewayTarget;
  platformApi: GatewayTarget;
  /** Options of each tenant's egress proxy (public addresses only unless `allow` says otherwise). */
  egress?: Omit<EgressProxyOptions, 'log'>;
  log: Pick<Logger, 'info' | 'warn'>;
}

export interface OpenGateway {
  /** Host directory to mount at `INSIDE.dir`. */
  dir: string;
  /** Host path of the runtime's socket (created by the runtime inside). */
  runtimeSocket: string;
}

interface Listeners {
  gateway: OpenGateway;
  pipes: SocketRelay[];
  egress: EgressProxy;
}

/**
 * The only doors out of a tenant: per tenant a directory with three unix sockets, owned by the tenant's uid
 * so only it (and root) can connect — `llm.sock` and `platform.sock` serving the LLM proxy and platform
 * API (in-process apps, each request stamped with the tenant: the socket decides whose key works there),
 * `egress.sock` an egress proxy that reaches public addresses only. Nothing else of the host is reachable
 * from a tenant, whose network namespace has only loopback.
 */
export class TenantGateway {
  private readonly tenants = new Map<string, Listeners>();

  constructor(private readonly options: TenantGatewayOptions) {}

  dirOf(tenantId: string): string {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(tenantId)) throw new Error(`not a tenant id: ${JSON.stringify(tenantId)}`);
    return join(this.options.rootDir, tenantId);
  }

  /** Opens (or returns the already open) gateway of a tenant, its sockets owned by `uid:gid`. */
  async open(tenantId: string, owner: { uid: number; gid: number }): Promise<OpenGateway> {
    const existing = this.tenants.get(tenantId);
    if (existing) return existing.gateway;
    await mkdir(this.options.rootDir, { recursive: true, mode: 0o711 });
    await chmod(this.options.rootDir, 0o711);
    const dir = this.dirOf(tenantId);
    // A leftover directory (crash, restart) is replaced: its sockets are dead.
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o700 });
    // The runtime (as the tenant) creates runtime.sock here, so the directory is the tenant's.
    await chown(dir, owner.uid, owner.gid);
    const pipes: SocketRelay[] = [];
    // The host's own addresses are never a destination, even a public one: behind it are its services.
    const deny = [...(this.options.egress?.deny ?? []), ...hostAddresses()];
    const egress = createEgressProxy({ ...this.options.egress, deny, log: this.options.log });
    try {
      for (const [name, target] of [
        ['llm.sock', this.options.llmProxy],
        ['platform.sock', this.options.platformApi],
      ] as const) {
        if ('app' in target) {
          const server = await listenOn(
            { fetch: (req) => target.app().fetch(stampTenant(req, tenantId)) },
            {
              path: join(dir, name),
            },
          );
          pipes.push({ server: server.server, close: () => server.close() });
          continue;
        }
        pipes.push(
          await listenRelay({ path: join(dir, name) }, () =>
            connect({ port: target.port, host: target.host, allowHalfOpen: true }),
          ),
        );
      }
      await egress.listen({ path: join(dir, 'egress.sock') });
      for (const name of ['llm.sock', 'platform.sock', 'egress.sock']) {
        await chown(join(dir, name), owner.uid, owner.gid);
        await chmod(join(dir, name), 0o600);
      }
    } catch (err) {
      await closeListeners({ pipes, egress });
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    const gateway = { dir, runtimeSocket: join(dir, 'runtime.sock') };
    this.tenants.set(tenantId, { gateway, pipes, egress });
    return gateway;
  }

  isOpen(tenantId: string): boolean {
    return this.tenants.has(tenantId);
  }

  /** Stops a tenant's listeners (connections in flight are cut); the directory stays until `remove`. */
  async close(tenantId: string): Promise<void> {
    const listeners = this.tenants.get(tenantId);
    if (!listeners) return;
    this.tenants.delete(tenantId);
    await closeListeners(listeners);
  }

  /** Closes and deletes a tenant's gateway directory. Idempotent. */
  async remove(tenantId: string): Promise<void> {
    await this.close(tenantId);
    await rm(this.dirOf(tenantId), { recursive: true, force: true });
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.tenants.keys()].map((id) => this.close(id)));
  }
}

async function closeListeners({ pipes, egress }: Pick<Listeners, 'pipes' | 'egress'>): Promise<void> {
  await Promise.all([...pipes.map((relay) => relay.close()), egress.close().catch(() => undefined)]);
}
