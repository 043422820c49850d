import type { ServerType } from '../catalog.js';

/** Server states as spawn.sh reports them (the contract's mapping of the providers' own states). */
export const SERVER_STATUSES = [
  'initializing',
  'running',
  'stopping',
  'off',
  'destroying',
  'migrating',
  'rebuilding',
  'unknown',
  'destroyed',
] as const;
export type ServerStatus = (typeof SERVER_STATUSES)[number];

/** A provider's own state word → ours: initializing/starting → initializing, deleting → destroying, … */
export function mapProviderStatus(status: string): ServerStatus {
  switch (status) {
    case 'initializing':
    case 'starting':
      return 'initializing';
    case 'deleting':
      return 'destroying';
    case 'running':
    case 'stopping':
    case 'off':
    case 'migrating':
    case 'rebuilding':
      return status;
    default:
      return 'unknown';
  }
}

export interface ProviderServer {
  /** The provider's id for the server (Hetzner's numeric id as a string, the local sandbox id). */
  providerId: string;
  status: ServerStatus;
  labels: Record<string, string>;
  ipv4: string | null;
  ipv6: string | null;
  /** Where to SSH to (host, port, login). */
  ssh: { host: string; port: number; user: string } | null;
  /** Our type slug, translated back from the provider's type when known. */
  type: string | null;
  image: string | null;
  location: string | null;
}

export interface ProviderSshKey {
  /** Our key id (`key_…`). */
  id: string;
  name: string;
  publicKey: string;
  md5: string;
}

export interface CreateServerInput {
  serverId: string;
  name: string;
  type: ServerType;
  image: string;
  location: string;
  sshKeys: ProviderSshKey[];
  userData?: string;
  /** `wallet=0x…` and spawn's own bookkeeping labels; the provider stores them with the server. */
  labels: Record<string, string>;
}

export interface CreatedServer {
  server: ProviderServer;
  /** Only when no SSH key was given and the provider generated a password (returned to the caller once). */
  rootPassword?: string;
}

/** What a provider can actually provide; anything else is refused with a 422 naming these. */
export interface ProviderOffer {
  types: string[];
  images: string[];
  locations: string[];
  /** Whether a server without SSH keys can be reached (a generated root password). */
  passwordLogin: boolean;
  /** How user_data is run: cloud-init (any format it reads) or as a shell script. */
  userData: 'cloud-init' | 'shell';
}

export class ProviderError extends Error {
  constructor(
    message: string,
    readonly code: string = 'provider_error',
    /** True when retrying later may succeed (rate limits, outages). */
    readonly transient = false,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

/**
 * One compute backend. Every mutating method resolves when the change is complete on the provider (the
 * provider's own asynchronous action finished), and throws a ProviderError when it failed.
 */
export interface ComputeProvider {
  readonly name: 'local' | 'hetzner';
  offer(): ProviderOffer;
  /** Why the provider cannot serve requests right now (e.g. sandboxes unavailable), or undefined. */
  unavailableReason(): string | undefined;
  create(input: CreateServerInput): Promise<CreatedServer>;
  get(providerId: string): Promise<ProviderServer | undefined>;
  /** Every server this service manages on the provider (found by label), for reconciliation. */
  list(): Promise<ProviderServer[]>;
  powerOn(providerId: string): Promise<void>;
  /** Graceful shutdown (ACPI on Hetzner, SIGTERM then kill locally). */
  shutdown(providerId: string): Promise<void>;
  reboot(providerId: string): Promise<void>;
  /** The server is off when called. */
  changeType(providerId: string, type: ServerType, upgradeDisk: boolean): Promise<void>;
  rebuild(providerId: string, image: string, sshKeys: ProviderSshKey[], userData?: string): Promise<void>;
  delete(providerId: string): Promise<void>;
  /** Forget a registered key at the provider (when the last spawn key with that fingerprint goes). */
  removeSshKey(md5: string): Promise<void>;
  /** Bring the provider up (e.g. restart local servers that were running); called once at start. */
  init(): Promise<void>;
  /** Calls `listener` when a server changes state by itself (a local server whose processes died). */
  watch?(listener: (providerId: string) => void): void;
  close(): Promise<void>;
}

/** Labels every provider resource carries, so ownership can be rebuilt if the database is lost. */
export const LABEL_WALLET = 'wallet';
export const LABEL_SERVER = 'spawn-id';
export const LABEL_NAME = 'spawn-name';
export const LABEL_TYPE = 'spawn-type';
export const LABEL_MANAGED = 'managed-by';
export const MANAGED_BY = 'spawn';
