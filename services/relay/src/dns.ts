import { Resolver } from 'node:dns/promises';
import { dkimRecordValue } from './dkim.js';

/** The DNS lookups relay makes (domain verification, and SPF/DKIM/DMARC of incoming mail through mailauth). */
export interface DnsLookup {
  resolve(name: string, rrtype: string): Promise<unknown>;
}

/** A resolver on the configured servers (or the system's), with a bounded wait per query. */
export function createDnsLookup({ servers, timeoutMs }: { servers?: string[]; timeoutMs: number }): DnsLookup {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers?.length) resolver.setServers(servers);
  return { resolve: (name, rrtype) => resolver.resolve(name, rrtype) };
}

/** mailauth's resolver signature (`dns.resolve`-like). */
export const mailauthResolver =
  (lookup: DnsLookup) =>
  (name: string, rrtype: string): Promise<string[][] | string[]> =>
    lookup.resolve(name, rrtype) as Promise<string[][] | string[]>;

export type RecordPurpose = 'mx' | 'spf' | 'dkim' | 'dmarc';

export interface DnsRecord {
  purpose: RecordPurpose;
  type: 'MX' | 'TXT';
  /** Fully qualified owner name, without the trailing dot. */
  name: string;
  value: string;
  priority?: number;
  /** Whether the domain counts as verified only with this record in place. */
  required: boolean;
}

export type RecordState = 'verified' | 'missing' | 'mismatch' | 'error';

export interface RecordCheck extends DnsRecord {
  state: RecordState;
  /** What DNS answered for this name and type (TXT strings joined). */
  found: string[];
  detail?: string;
}

export interface DomainDnsSettings {
  mxHost: string;
  spfInclude?: string | undefined;
}

/** The records a custom domain publishes: MX to us, SPF authorising us, our DKIM key, and a DMARC policy. */
export function recordsFor(
  domain: string,
  dkim: { selector: string; publicKey: string },
  settings: DomainDnsSettings,
): DnsRecord[] {
  const spf = settings.spfInclude ? `v=spf1 include:${settings.spfInclude} ~all` : 'v=spf1 mx ~all';
  return [
    { purpose: 'mx', type: 'MX', name: domain, value: settings.mxHost, priority: 10, required: true },
    { purpose: 'spf', type: 'TXT', name: domain, value: spf, required: true },
    {
      purpose: 'dkim',
      type: 'TXT',
      name: `${dkim.selector}._domainkey.${domain}`,
      value: dkimRecordValue(dkim.publicKey),
      required: true,
    },
    {
      purpose: 'dmarc',
      type: 'TXT',
      name: `_dmarc.${domain}`,
      value: `v=DMARC1; p=quarantine; adkim=r; aspf=r`,
      required: false,
    },
  ];
}

const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN']);
const normalHost = (host: string) => host.toLowerCase().replace(/\.$/, '');
/** DKIM/SPF TXT values compare without whitespace differences (`p=` keys are often split or spaced). */
const compact = (value: string) => value.replace(/\s+/g, '').replace(/;$/, '').toLowerCase();

async function lookup(
  dns: DnsLookup,
  name: string,
  type: 'MX' | 'TXT',
): Promise<{ answers: string[] } | { error: string }> {
  try {
    const result = await dns.resolve(name, type);
    if (type === 'MX') {
      return {
        answers: (result as { exchange: string; priority: number }[]).map(
          (mx) => `${mx.priority} ${normalHost(mx.exchange)}`,
        ),
      };
    }
    return { answers: (result as string[][]).map((chunks) => chunks.join('')) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (NOT_FOUND.has(code)) return { answers: [] };
    return { error: `DNS lookup failed (${code || (err as Error).message})` };
  }
}

function judge(record: DnsRecord, answers: string[]): { state: RecordState; detail?: string } {
  switch (record.purpose) {
    case 'mx': {
      if (answers.length === 0) return { state: 'missing' };
      const ours = answers.some((a) => normalHost(a.split(' ')[1] ?? '') === normalHost(record.value));
      return ours ? { state: 'verified' } : { state: 'mismatch', detail: `no MX points at ${record.value}` };
    }
    case 'spf': {
      const spf = answers.filter((a) => a.trim().toLowerCase().startsWith('v=spf1'));
      if (spf.length === 0) return { state: 'missing' };
      if (spf.length > 1)
        return { state: 'mismatch', detail: 'more than one SPF record (a permanent error for receivers)' };
      const wanted = compact(record.value).replace(/~all$/, '');
      const mechanism = wanted.replace(/^v=spf1/, '');
      return compact(spf[0] as string).includes(mechanism)
        ? { state: 'verified' }
        : { state: 'mismatch', detail: `the SPF record does not contain "${mechanism}"` };
    }
    case 'dkim': {
      if (answers.length === 0) return { state: 'missing' };
      const wantedKey = /p=([^;]+)/.exec(compact(record.value))?.[1];
      const match = answers.some((a) => /p=([^;]+)/.exec(compact(a))?.[1] === wantedKey);
      return match
        ? { state: 'verified' }
        : { state: 'mismatch', detail: 'the published key is not this domain’s key' };
    }
    case 'dmarc': {
      const dmarc = answers.filter((a) => a.trim().toUpperCase().startsWith('V=DMARC1'));
      if (dmarc.length === 0) return { state: 'missing' };
      return dmarc.length === 1 ? { state: 'verified' } : { state: 'mismatch', detail: 'more than one DMARC record' };
    }
  }
}

/** Looks every record up and says, per record, whether DNS has it as we asked. */
export async function checkRecords(dns: DnsLookup, records: DnsRecord[]): Promise<RecordCheck[]> {
  return Promise.all(
    records.map(async (record) => {
      const result = await lookup(dns, record.name, record.type);
      if ('error' in result) return { ...record, state: 'error' as const, found: [], detail: result.error };
      return { ...record, found: result.answers, ...judge(record, result.answers) };
    }),
  );
}
