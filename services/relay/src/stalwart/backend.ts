import {
  AppError,
  type Logger,
  type RouteSpec,
  randomToken,
  type SecretBox,
  unprocessable,
  upstreamUnavailable,
} from '@agentstack/core';
import type { Kysely } from '@agentstack/db';
import type { Hono } from 'hono';
import type { RelayVariables } from '../app.js';
import { BackendUnavailable, type MailBackend, type ProvisionedMailbox } from '../backend.js';
import type { RelayConfig } from '../config.js';
import type { MailboxRow, RelayDatabase } from '../db.js';
import type { DkimKey } from '../dkim.js';
import { JmapClient, JmapError } from '../jmap/client.js';
import { basicAuthorization, type Credential, CredentialCache } from '../jmap/credentials.js';
import { JmapMail, JmapSendRefused } from '../jmap/mail.js';
import type { RelayStore } from '../store.js';
import type { WebhookDispatcher } from '../webhooks/dispatcher.js';
import { connectStalwart, type StalwartManagement } from './management.js';
import { mountMtaHook } from './mta-hook.js';
import { bearer, type OAuthTokens, obtainTokens, refreshTokens } from './oauth.js';

export interface JmapBackendOptions {
  /** The JMAP server's base URL (the session is at /.well-known/jmap). */
  url: string;
  /** Account and domain administration (Stalwart); absent for a plain JMAP server managed elsewhere. */
  management: () => Promise<StalwartManagement>;
  store: Pick<RelayStore, 'mailboxRow' | 'setMailboxBackend'>;
  box: SecretBox;
  log: Logger;
  /** How relay authenticates as each mailbox. */
  auth: 'basic' | 'oauth';
  fetch?: typeof globalThis.fetch;
}

/** Maps JMAP/HTTP failures to the API's 503, leaving our own errors (404, 422, …) untouched. */
async function guard<T>(log: Logger, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AppError) throw err;
    log.error({ err }, `${what} failed`);
    throw upstreamUnavailable(`the mail server is unavailable (${what}); try again shortly`);
  }
}

/**
 * The production backend: each relay mailbox is an account on Stalwart (created through its management
 * API with a random password kept sealed), read and sent over standard JMAP as that account. Credentials are
 * cached per mailbox and refreshed once on a 401 (a rotated password is re-read, or reset; OAuth tokens are
 * refreshed). Incoming mail is announced through Stalwart's MTA hook (see mta-hook.ts).
 */
export class JmapBackend implements MailBackend {
  readonly name = 'stalwart' as const;
  readonly credentials: CredentialCache;
  private readonly mail = new Map<string, JmapMail>();
  private readonly tokens = new Map<string, OAuthTokens>();

  constructor(private readonly options: JmapBackendOptions) {
    this.credentials = new CredentialCache((mailboxId, stale) => this.obtain(mailboxId, stale));
  }

  async start(): Promise<void> {
    await this.options.management();
  }

  async stop(): Promise<void> {
    this.mail.clear();
  }

  private mailFor(mailbox: MailboxRow): JmapMail {
    let mail = this.mail.get(mailbox.id);
    if (!mail) {
      if (this.mail.size > 1_000) this.mail.delete(this.mail.keys().next().value as string);
      mail = new JmapMail(
        new JmapClient({
          sessionUrl: new URL('/.well-known/jmap', this.options.url).toString(),
          auth: this.credentials.provider(mailbox.id),
          ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
        }),
      );
      this.mail.set(mailbox.id, mail);
    }
    return mail;
  }

  /** The credential source: the mailbox's password, or OAuth tokens obtained with it. */
  private async obtain(mailboxId: string, stale: Credential | undefined): Promise<Credential> {
    const row = await this.options.store.mailboxRow(mailboxId);
    if (!row?.backend_login || !row.backend_secret)
      throw new JmapError('mailbox has no JMAP credentials', 'unauthorized');
    let password = this.options.box.openText(row.backend_secret, `mailbox:${row.id}`);
    if (this.options.auth === 'oauth') {
      const held = this.tokens.get(mailboxId);
      let tokens: OAuthTokens | undefined;
      if (held?.refreshToken && stale) {
        tokens = await refreshTokens(this.options.url, held.refreshToken, this.options.fetch).catch(() => undefined);
      }
      tokens ??= await obtainTokens(
        this.options.url,
        basicAuthorization(row.backend_login, password),
        this.options.fetch,
      );
      this.tokens.set(mailboxId, tokens);
      return bearer(tokens);
    }
    const credential = { authorization: basicAuthorization(row.backend_login, password) };
    if (stale && stale.authorization === credential.authorization && row.backend_ref) {
      // The stored password itself was refused (changed on the server): set a new one there and keep it.
      password = randomToken(32);
      const management = await this.options.management();
      await management.setPassword(row.backend_ref, password);
      await this.options.store.setMailboxBackend(row.id, {
        ref: row.backend_ref,
        login: row.backend_login,
        secret: this.options.box.seal(password, `mailbox:${row.id}`),
      });
      return { authorization: basicAuthorization(row.backend_login, password) };
    }
    return credential;
  }

  async provisionMailbox(mailbox: {
    id: string;
    address: string;
    localPart: string;
    domain: string;
  }): Promise<ProvisionedMailbox> {
    const password = randomToken(32);
    const management = await this.options.management();
    const ref = await management.createAccount({
      localPart: mailbox.localPart,
      domain: mailbox.domain,
      password,
      description: `relay.sh mailbox ${mailbox.id}`,
    });
    return { ref, login: mailbox.address, secret: password };
  }

  async removeMailbox(mailbox: MailboxRow): Promise<void> {
    if (mailbox.backend_ref) await (await this.options.management()).deleteAccount(mailbox.backend_ref);
    this.credentials.forget(mailbox.id);
    this.mail.delete(mailbox.id);
    this.tokens.delete(mailbox.id);
  }

  listMessages: MailBackend['listMessages'] = (mailbox, query) =>
    guard(this.options.log, 'listing messages', () => this.mailFor(mailbox).list(query));

  getMessage: MailBackend['getMessage'] = (mailbox, id, options) =>
    guard(this.options.log, 'reading a message', () => this.mailFor(mailbox).get(id, options));

  getAttachment: MailBackend['getAttachment'] = (mailbox, messageId, attachmentId) =>
    guard(this.options.log, 'downloading an attachment', async () => {
      try {
        return await this.mailFor(mailbox).attachment(messageId, attachmentId);
      } catch (err) {
        if (err instanceof JmapError && err.type === 'notFound') return undefined;
        throw err;
      }
    });

  deleteMessage: MailBackend['deleteMessage'] = (mailbox, id) =>
    guard(this.options.log, 'deleting a message', () => this.mailFor(mailbox).delete(id));

  countMessages: MailBackend['countMessages'] = (mailbox) =>
    guard(this.options.log, 'counting messages', () => this.mailFor(mailbox).count());

  async unroutable(): Promise<string[]> {
    return [];
  }

  async send(mailbox: MailboxRow, message: Parameters<MailBackend['send']>[1]) {
    try {
      return await this.mailFor(mailbox).send(message);
    } catch (err) {
      if (err instanceof JmapSendRefused) {
        throw unprocessable('policy_violation', `the mail server refused the message: ${err.message}`, {
          reason: err.type,
        });
      }
      throw new BackendUnavailable(`the mail server failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async provisionDomain(domain: { name: string; dkim: DkimKey }): Promise<void> {
    await (await this.options.management()).ensureDomain(domain.name, domain.dkim);
  }

  async removeDomain(name: string): Promise<void> {
    await (await this.options.management()).removeDomain(name);
  }
}

/** The Stalwart backend from configuration, with its MTA hook route. */
export function stalwartBackend(deps: {
  config: RelayConfig;
  store: RelayStore;
  box: SecretBox;
  dispatcher: WebhookDispatcher;
  db: Kysely<RelayDatabase>;
  isOwnDomain: (name: string) => Promise<boolean>;
  log: Logger;
}): { backend: JmapBackend; routes: (app: Hono<{ Variables: RelayVariables }>) => RouteSpec[] } {
  const { config } = deps;
  const url = config.STALWART_URL as string;
  const authorization = config.STALWART_ADMIN_TOKEN
    ? `Bearer ${config.STALWART_ADMIN_TOKEN}`
    : basicAuthorization(config.STALWART_ADMIN_USER ?? '', config.STALWART_ADMIN_PASSWORD ?? '');
  let management: Promise<StalwartManagement> | undefined;
  const backend = new JmapBackend({
    url,
    management: () => {
      management ??= connectStalwart({ url, authorization }).then((m) => {
        deps.log.info({ flavour: m.flavour }, 'connected to the Stalwart management API');
        return m;
      });
      management.catch(() => {
        management = undefined;
      });
      return management;
    },
    store: deps.store,
    box: deps.box,
    log: deps.log,
    auth: config.STALWART_MAILBOX_AUTH,
  });
  return {
    backend,
    routes: (app) =>
      mountMtaHook(app as unknown as Hono, {
        secret: config.RELAY_MTA_HOOK_SECRET as string,
        store: deps.store,
        db: deps.db,
        dispatcher: deps.dispatcher,
        isOwnDomain: deps.isOwnDomain,
        log: deps.log,
      }),
  };
}
