import { addressSchema } from '@agentstack/chain';
import { ConfigError, env, loadConfig } from '@agentstack/core';
import { paymentEnv } from '@agentstack/x402';
import { z } from 'zod';
import { priceEnv } from './prices.js';

const domainName = z
  .string()
  .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/, 'expected a lower-case domain name');

/** `host:port` pairs of DNS servers (IPv4 or [IPv6]), e.g. `127.0.0.1:5353`. */
const dnsServers = env
  .list()
  .pipe(z.array(z.string().regex(/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\])(:\d{1,5})?$/, 'expected host:port')));

export const relayConfigSchema = z.object({
  ...paymentEnv,
  ...priceEnv,
  RELAY_PORT: env.port(4102),
  RELAY_HOST: z.string().default('127.0.0.1'),
  DATABASE_URL: env.url(),
  /** Receives the x402 payments. */
  PAY_TO_ADDRESS: addressSchema,
  SERVICE_DATA_DIR: z.string().default('.data/relay'),
  /** 32 bytes of hex; if unset, a key file is created once in SERVICE_DATA_DIR (0600). */
  RELAY_MASTER_KEY: env.hexKey(32).optional(),
  LOG_LEVEL: env.logLevel(),

  /** Which mail backend serves mailboxes. */
  RELAY_BACKEND: z.enum(['embedded', 'stalwart']).default('embedded'),
  /** The domains mailboxes are created on by default (the first is the default). */
  RELAY_DOMAINS: env.list().pipe(z.array(domainName).min(1)).default(['relay.localhost']),
  /** The host custom domains point their MX at. Default: mx.<first service domain>. */
  RELAY_MX_HOST: domainName.optional(),
  /** An SPF include for custom domains (e.g. `_spf.relay.example`); without it the record is `v=spf1 mx ~all`. */
  RELAY_SPF_INCLUDE: z
    .string()
    .regex(/^([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/, 'expected a DNS name like _spf.relay.example')
    .optional(),
  /** DNS servers for domain verification and inbound SPF/DKIM/DMARC (default: the system's). */
  RELAY_DNS_SERVER: dnsServers.optional(),
  RELAY_DNS_TIMEOUT_MS: env.int(2_000, 100),

  // Embedded backend: SMTP in, SMTP relay out.
  RELAY_SMTP_PORT: env.port(2525),
  RELAY_SMTP_HOST: z.string().default('127.0.0.1'),
  /** Concurrent SMTP connections accepted; more get a 421 and retry later. */
  RELAY_SMTP_MAX_CLIENTS: env.int(200, 1),
  /** The name the SMTP server greets with. Default: the MX host. */
  RELAY_SMTP_HOSTNAME: domainName.optional(),
  /** PEM files enabling STARTTLS on the embedded SMTP server. */
  RELAY_SMTP_TLS_KEY: z.string().optional(),
  RELAY_SMTP_TLS_CERT: z.string().optional(),
  /** Outbound relay, e.g. `smtp://user:pass@smtp.example.com:587`. Mail to this service's own domains is delivered internally. */
  RELAY_OUTBOUND_SMTP_URL: z.url({ protocol: /^smtps?$/ }).optional(),

  // Limits.
  RELAY_DEFAULT_TTL_HOURS: env.int(24, 1),
  RELAY_MAX_TTL_DAYS: env.int(365, 1),
  RELAY_SEND_DAILY_LIMIT: env.int(10, 1),
  RELAY_MAX_RECIPIENTS: env.int(10, 1),
  RELAY_MAX_SEND_BYTES: env.int(10 * 1024 * 1024, 1024),
  RELAY_MAX_MESSAGE_BYTES: env.int(25 * 1024 * 1024, 1024),
  RELAY_MAX_RCPT_PER_MESSAGE: env.int(100, 1),
  RELAY_SWEEP_INTERVAL_MS: env.int(15_000, 100),

  // Webhooks.
  RELAY_WEBHOOK_TIMEOUT_MS: env.int(10_000, 100),
  RELAY_WEBHOOK_MAX_ATTEMPTS: env.int(8, 1),
  RELAY_WEBHOOK_RETRY_BASE_MS: env.int(5_000, 10),
  RELAY_WEBHOOK_RETRY_MAX_MS: env.int(60 * 60_000, 10),
  RELAY_WEBHOOK_DISABLE_AFTER: env.int(10, 1),
  /** Allow webhook URLs on loopback/private addresses (local development only). */
  RELAY_WEBHOOK_ALLOW_PRIVATE: env.bool(false),

  // Stalwart backend.
  STALWART_URL: z.url().optional(),
  STALWART_ADMIN_USER: z.string().optional(),
  STALWART_ADMIN_PASSWORD: z.string().optional(),
  /** An API key / bearer token for the management API instead of user + password. */
  STALWART_ADMIN_TOKEN: z.string().optional(),
  /** How relay authenticates to JMAP as each mailbox: its own password (basic) or OAuth tokens from it. */
  STALWART_MAILBOX_AUTH: z.enum(['basic', 'oauth']).default('basic'),
  /** Shared secret Stalwart's MTA hook sends (HTTP Basic password or Bearer token). */
  RELAY_MTA_HOOK_SECRET: z.string().min(16).optional(),
});

export type RelayConfig = z.infer<typeof relayConfigSchema>;

export function loadRelayConfig(source: Record<string, string | undefined> = process.env): RelayConfig {
  const config = loadConfig(relayConfigSchema, source);
  const problems: { variable: string; message: string }[] = [];
  if (config.RELAY_BACKEND === 'stalwart') {
    if (!config.STALWART_URL)
      problems.push({ variable: 'STALWART_URL', message: 'required when RELAY_BACKEND=stalwart' });
    if (!config.STALWART_ADMIN_TOKEN && !(config.STALWART_ADMIN_USER && config.STALWART_ADMIN_PASSWORD)) {
      problems.push({
        variable: 'STALWART_ADMIN_TOKEN',
        message: 'required when RELAY_BACKEND=stalwart (or STALWART_ADMIN_USER and STALWART_ADMIN_PASSWORD)',
      });
    }
    if (!config.RELAY_MTA_HOOK_SECRET) {
      problems.push({ variable: 'RELAY_MTA_HOOK_SECRET', message: 'required when RELAY_BACKEND=stalwart' });
    }
  }
  if (Boolean(config.RELAY_SMTP_TLS_KEY) !== Boolean(config.RELAY_SMTP_TLS_CERT)) {
    problems.push({
      variable: 'RELAY_SMTP_TLS_CERT',
      message: 'RELAY_SMTP_TLS_KEY and RELAY_SMTP_TLS_CERT go together',
    });
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}

/** The MX host custom domains must point at. */
export const mxHost = (config: Pick<RelayConfig, 'RELAY_MX_HOST' | 'RELAY_DOMAINS'>) =>
  config.RELAY_MX_HOST ?? `mx.${config.RELAY_DOMAINS[0]}`;
