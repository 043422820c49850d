import {
  AppError,
  conflict,
  forbidden,
  type Logger,
  newId,
  notFound,
  type SecretBox,
  unprocessable,
} from '@agentstack/core';
import type { MailBackend } from './backend.js';
import type { DomainRow } from './db.js';
import { type DkimKey, generateDkimKey, openDkimKey, sealDkimKey } from './dkim.js';
import {
  checkRecords,
  type DnsLookup,
  type DnsRecord,
  type DomainDnsSettings,
  type RecordCheck,
  recordsFor,
} from './dns.js';
import type { RelayStore } from './store.js';

export interface DomainView {
  id: string;
  domain: string;
  status: 'pending' | 'verified';
  records: (DnsRecord | RecordCheck)[];
  createdAt: string;
  verifiedAt: string | null;
  lastCheckedAt: string | null;
}

const isUniqueViolation = (err: unknown) => (err as { code?: string }).code === '23505';

/**
 * Service domains (from configuration) and payers' custom domains: DKIM keys (sealed at rest), the DNS
 * records to publish, verification against DNS, and the question "is this a domain we receive mail for".
 */
export class Domains {
  private readonly serviceDomains: Set<string>;
  private ownCache = new Map<string, { own: boolean; until: number }>();

  constructor(
    private readonly deps: {
      store: RelayStore;
      box: SecretBox;
      dns: DnsLookup;
      backend: MailBackend;
      settings: DomainDnsSettings & { serviceDomains: string[] };
      log: Logger;
      /** How long "is this one of our domains" answers are cached (RCPT TO asks it for every recipient). */
      cacheMs?: number;
    },
  ) {
    this.serviceDomains = new Set(deps.settings.serviceDomains);
  }

  get defaultDomain(): string {
    return this.deps.settings.serviceDomains[0] as string;
  }

  get serviceDomainNames(): string[] {
    return [...this.serviceDomains];
  }

  isServiceDomain(name: string): boolean {
    return this.serviceDomains.has(name);
  }

  /** Creates the DKIM key of every configured service domain once (shared by all replicas through the database). */
  async ensureServiceDomains(): Promise<DomainRow[]> {
    const rows: DomainRow[] = [];
    for (const name of this.deps.settings.serviceDomains) {
      let row = await this.deps.store.serviceDomain(name);
      if (!row) {
        const key = await generateDkimKey();
        row = await this.deps.store.ensureServiceDomain({
          id: newId('dom'),
          owner: null,
          name,
          dkimSelector: key.selector,
          dkimPublicKey: key.publicKey,
          dkimPrivateKeySealed: sealDkimKey(this.deps.box, name, key.privateKeyPem),
        });
      }
      rows.push(row);
      await this.deps.backend.provisionDomain({ name, dkim: this.keyOf(row) });
      this.deps.log.info(
        {
          domain: name,
          records: recordsFor(
            name,
            { selector: row.dkim_selector, publicKey: row.dkim_public_key },
            this.deps.settings,
          ),
        },
        'service domain ready; publish these DNS records for delivery to and from it',
      );
    }
    return rows;
  }

  /** Whether mail for this domain is ours to receive: a service domain or a verified custom domain. */
  async isOwnDomain(name: string): Promise<boolean> {
    if (this.serviceDomains.has(name)) return true;
    const cached = this.ownCache.get(name);
    if (cached && cached.until > Date.now()) return cached.own;
    const own = (await this.deps.store.verifiedDomain(name)) !== undefined;
    this.ownCache.set(name, { own, until: Date.now() + (this.deps.cacheMs ?? 10_000) });
    return own;
  }

  /** The DKIM key outgoing mail from `name` is signed with. */
  async signingKey(name: string): Promise<DkimKey | undefined> {
    const row = this.serviceDomains.has(name)
      ? await this.deps.store.serviceDomain(name)
      : await this.deps.store.verifiedDomain(name);
    return row ? this.keyOf(row) : undefined;
  }

  /**
   * Which domain a new mailbox of `owner` goes on: the default service domain, another service domain, or
   * one of the owner's verified custom domains.
   */
  async domainForNewMailbox(
    owner: string,
    requested: string | undefined,
  ): Promise<{ name: string; domainId: string | null }> {
    const name = requested ?? this.defaultDomain;
    if (this.serviceDomains.has(name)) return { name, domainId: null };
    const mine = await this.deps.store.domainByOwnerAndName(owner, name);
    if (mine?.verified_at) return { name, domainId: mine.id };
    if (await this.deps.store.verifiedDomain(name)) throw forbidden(`${name} belongs to another wallet`);
    if (mine) {
      throw unprocessable('policy_violation', `${name} is not verified yet: publish its DNS records and call verify`, {
        domainId: mine.id,
      });
    }
    throw new AppError(
      'invalid_request',
      `${name} is not a domain served here; register it with POST /v1/domains`,
      400,
      {
        field: 'body.domain',
        details: { serviceDomains: [...this.serviceDomains] },
      },
    );
  }

  async create(owner: string, name: string): Promise<DomainView> {
    if ([...this.serviceDomains].some((d) => name === d || name.endsWith(`.${d}`))) {
      throw conflict(`${name} is operated by this service`);
    }
    if (await this.deps.store.domainByOwnerAndName(owner, name)) throw conflict(`you already registered ${name}`);
    if (await this.deps.store.verifiedDomain(name)) throw conflict(`${name} is already verified by another wallet`);
    const key = await generateDkimKey();
    try {
      const row = await this.deps.store.insertDomain({
        id: newId('dom'),
        owner,
        name,
        dkimSelector: key.selector,
        dkimPublicKey: key.publicKey,
        dkimPrivateKeySealed: sealDkimKey(this.deps.box, name, key.privateKeyPem),
      });
      return this.view(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`you already registered ${name}`);
      throw err;
    }
  }

  async getOwned(owner: string, id: string): Promise<DomainRow> {
    const row = await this.deps.store.domainById(id);
    if (!row) throw notFound('domain');
    if (row.owner !== owner) throw forbidden();
    return row;
  }

  view(row: DomainRow): DomainView {
    const expected = this.records(row);
    const last = row.last_check as RecordCheck[] | null;
    return {
      id: row.id,
      domain: row.name,
      status: row.verified_at ? 'verified' : 'pending',
      records: expected.map(
        (record) => last?.find((c) => c.purpose === record.purpose && c.name === record.name) ?? record,
      ),
      createdAt: (row.created_at as Date).toISOString(),
      verifiedAt: row.verified_at ? row.verified_at.toISOString() : null,
      lastCheckedAt: row.last_checked_at ? row.last_checked_at.toISOString() : null,
    };
  }

  /**
   * Looks every record up through the configured resolver and records the result. The domain becomes
   * verified when every required record is in place; it then stays verified (mailboxes depend on it).
   */
  async verify(row: DomainRow): Promise<DomainView> {
    const checks = await checkRecords(this.deps.dns, this.records(row));
    const complete = checks.every((c) => !c.required || c.state === 'verified');
    let updated: DomainRow;
    try {
      updated = await this.deps.store.recordDomainCheck(row.id, checks, complete);
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`${row.name} was verified by another wallet first`);
      throw err;
    }
    if (complete && !row.verified_at) {
      this.ownCache.delete(row.name);
      try {
        await this.deps.backend.provisionDomain({ name: row.name, dkim: this.keyOf(updated) });
      } catch (err) {
        this.deps.log.error({ err, domain: row.name }, 'provisioning a verified domain at the mail backend failed');
      }
    }
    return { ...this.view(updated), records: checks };
  }

  /** 409 while mailboxes still use the domain. */
  async assertDeletable(row: DomainRow): Promise<void> {
    const mailboxes = await this.deps.store.countMailboxesOnDomain(row.id);
    if (mailboxes > 0) {
      throw conflict(`${row.name} still has ${mailboxes} mailbox(es); delete them first`, { mailboxes });
    }
  }

  async delete(row: DomainRow): Promise<void> {
    await this.assertDeletable(row);
    if (row.verified_at) await this.deps.backend.removeDomain(row.name);
    await this.deps.store.deleteDomain(row.id);
    this.ownCache.delete(row.name);
  }

  private records(row: DomainRow): DnsRecord[] {
    return recordsFor(row.name, { selector: row.dkim_selector, publicKey: row.dkim_public_key }, this.deps.settings);
  }

  private keyOf(row: DomainRow): DkimKey {
    return {
      domain: row.name,
      selector: row.dkim_selector,
      privateKeyPem: openDkimKey(this.deps.box, row.name, row.dkim_private_key),
    };
  }
}
