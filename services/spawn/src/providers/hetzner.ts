import { setTimeout as sleep } from 'node:timers/promises';
import type { Catalog, ServerType } from '../catalog.js';
import { HetznerApiError, type HetznerClient, type HetznerServer } from './hetzner-client.js';
import {
  type ComputeProvider,
  type CreatedServer,
  type CreateServerInput,
  LABEL_MANAGED,
  MANAGED_BY,
  mapProviderStatus,
  ProviderError,
  type ProviderOffer,
  type ProviderServer,
  type ProviderSshKey,
} from './provider.js';

export interface HetznerProviderOptions {
  client: HetznerClient;
  catalog: Catalog;
  /** How long to wait for an action (create, rebuild, …) before reporting it failed. */
  actionTimeoutMs?: number;
  /** How long a graceful shutdown may take before the server is powered off hard. */
  shutdownTimeoutMs?: number;
  /** Between polls of a server's status (while waiting for it to go off). */
  pollMs?: number;
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

/**
 * Servers on Hetzner Cloud. Our types, images and locations translate to Hetzner's (`small` → `cx23`, …);
 * every server and SSH key carries `managed-by=spawn` and `wallet=0x…` labels, so `list()` finds them by
 * label selector and ownership survives the loss of our database.
 */
export class HetznerProvider implements ComputeProvider {
  readonly name = 'hetzner' as const;

  constructor(private readonly options: HetznerProviderOptions) {}

  private get client(): HetznerClient {
    return this.options.client;
  }

  offer(): ProviderOffer {
    return {
      types: Object.keys(this.options.catalog.types),
      images: this.options.catalog.images,
      locations: this.options.catalog.locations,
      passwordLogin: true,
      userData: 'cloud-init',
    };
  }

  unavailableReason(): string | undefined {
    return undefined;
  }

  /** Server names are unique per Hetzner project (shared by every wallet): the caller's name plus our id. */
  static providerName(name: string, serverId: string): string {
    const suffix = serverId.replace(/^srv_/, '').toLowerCase().slice(0, 10);
    return `${name.slice(0, 52)}-${suffix}`;
  }

  private typeSlug(hetznerType: string): string | null {
    return Object.values(this.options.catalog.types).find((t) => t.hetzner === hetznerType)?.slug ?? null;
  }

  private describe(server: HetznerServer): ProviderServer {
    const ipv4 = server.public_net.ipv4?.ip ?? null;
    const ipv6 = server.public_net.ipv6?.ip ?? null;
    return {
      providerId: String(server.id),
      status: mapProviderStatus(server.status),
      labels: server.labels,
      ipv4,
      ipv6,
      ssh: ipv4 ? { host: ipv4, port: 22, user: 'root' } : null,
      type: this.typeSlug(server.server_type.name),
      image: server.image?.name ?? null,
      location: server.location.name,
    };
  }

  private id(providerId: string): number {
    if (!/^\d+$/.test(providerId)) throw new ProviderError(`not a Hetzner server id: ${providerId}`, 'invalid_input');
    return Number(providerId);
  }

  /** The Hetzner key for one of ours: found by fingerprint (another wallet may have added the same key), else created. */
  private async ensureKey(key: ProviderSshKey): Promise<string> {
    const existing = await this.client.listSshKeys({ fingerprint: key.md5 });
    if (existing[0]) return existing[0].name;
    try {
      const created = await this.client.createSshKey({
        name: `spawn-${key.id.replace(/^key_/, '').toLowerCase()}`,
        public_key: key.publicKey,
        labels: { [LABEL_MANAGED]: MANAGED_BY },
      });
      return created.name;
    } catch (err) {
      if (err instanceof HetznerApiError && err.code === 'uniqueness_error') {
        const again = await this.client.listSshKeys({ fingerprint: key.md5 });
        if (again[0]) return again[0].name;
      }
      throw err;
    }
  }

  async create(input: CreateServerInput): Promise<CreatedServer> {
    const keyNames: string[] = [];
    for (const key of input.sshKeys) keyNames.push(await this.ensureKey(key));
    const name = HetznerProvider.providerName(input.name, input.serverId);
    const labels = { ...input.labels, [LABEL_MANAGED]: MANAGED_BY };
    let created: Awaited<ReturnType<HetznerClient['createServer']>> | undefined;
    try {
      created = await this.client.createServer({
        name,
        server_type: input.type.hetzner,
        image: input.image,
        location: input.location,
        ...(keyNames.length ? { ssh_keys: keyNames } : {}),
        ...(input.userData ? { user_data: input.userData } : {}),
        labels,
        start_after_create: true,
      });
    } catch (err) {
      // A lost answer may still have created it: the name is ours alone, so look before failing.
      if (!(err instanceof ProviderError) || !err.transient) throw err;
      const [found] = await this.client.listServers({ name });
      if (!found) throw err;
      await this.waitForStatus(found.id, ['running'], this.options.actionTimeoutMs ?? 600_000);
      return { server: this.describe(await this.client.getServer(found.id)) };
    }
    const timeoutMs = this.options.actionTimeoutMs ?? 600_000;
    try {
      await this.client.waitForAction(created.action, { timeoutMs });
      for (const next of created.next_actions) await this.client.waitForAction(next, { timeoutMs });
    } catch (err) {
      // A half-made server would cost money while we report failure: remove it.
      await this.delete(String(created.server.id)).catch((cleanup) =>
        this.options.log?.warn(
          { err: cleanup, server: created?.server.id },
          'could not remove a server whose creation failed',
        ),
      );
      throw err;
    }
    const server = await this.client.getServer(created.server.id);
    return {
      server: this.describe(server),
      ...(created.root_password ? { rootPassword: created.root_password } : {}),
    };
  }

  async get(providerId: string): Promise<ProviderServer | undefined> {
    try {
      return this.describe(await this.client.getServer(this.id(providerId)));
    } catch (err) {
      if (err instanceof HetznerApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  async list(): Promise<ProviderServer[]> {
    const servers = await this.client.listServers({ labelSelector: `${LABEL_MANAGED}=${MANAGED_BY}` });
    return servers.map((s) => this.describe(s));
  }

  private async act(providerId: string, action: 'poweron' | 'shutdown' | 'poweroff' | 'reboot'): Promise<void> {
    const started = await this.client.serverAction(this.id(providerId), action);
    await this.client.waitForAction(started, { timeoutMs: this.options.actionTimeoutMs ?? 600_000 });
  }

  private async waitForStatus(id: number, wanted: string[], timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const server = await this.client.getServer(id);
      if (wanted.includes(server.status)) return true;
      if (Date.now() > deadline) return false;
      await sleep(this.options.pollMs ?? 3_000);
    }
  }

  async powerOn(providerId: string): Promise<void> {
    await this.act(providerId, 'poweron');
  }

  /** ACPI shutdown first; a guest that ignores it is powered off hard after the timeout. */
  async shutdown(providerId: string): Promise<void> {
    await this.act(providerId, 'shutdown');
    const off = await this.waitForStatus(this.id(providerId), ['off'], this.options.shutdownTimeoutMs ?? 120_000);
    if (!off) {
      this.options.log?.warn({ server: providerId }, 'graceful shutdown timed out; powering off');
      await this.act(providerId, 'poweroff');
    }
  }

  async reboot(providerId: string): Promise<void> {
    await this.act(providerId, 'reboot');
  }

  async changeType(providerId: string, type: ServerType, upgradeDisk: boolean): Promise<void> {
    const started = await this.client.changeType(this.id(providerId), {
      server_type: type.hetzner,
      upgrade_disk: upgradeDisk,
    });
    await this.client.waitForAction(started, { timeoutMs: this.options.actionTimeoutMs ?? 1_800_000 });
  }

  /** Hetzner re-applies the server's SSH keys and re-runs its user_data on rebuild. */
  async rebuild(providerId: string, image: string, _keys: ProviderSshKey[], userData?: string): Promise<void> {
    const started = await this.client.rebuild(this.id(providerId), {
      image,
      ...(userData ? { user_data: userData } : {}),
    });
    await this.client.waitForAction(started.action, { timeoutMs: this.options.actionTimeoutMs ?? 600_000 });
  }

  async delete(providerId: string): Promise<void> {
    try {
      const action = await this.client.deleteServer(this.id(providerId));
      await this.client.waitForAction(action, { timeoutMs: this.options.actionTimeoutMs ?? 600_000 });
    } catch (err) {
      if (err instanceof HetznerApiError && err.status === 404) return;
      throw err;
    }
  }

  async removeSshKey(md5: string): Promise<void> {
    for (const key of await this.client.listSshKeys({ fingerprint: md5 })) {
      if (key.labels[LABEL_MANAGED] !== MANAGED_BY) continue;
      await this.client.deleteSshKey(key.id).catch((err) => {
        if (!(err instanceof HetznerApiError && err.status === 404)) throw err;
      });
    }
  }

  async init(): Promise<void> {}
  async close(): Promise<void> {}
}
