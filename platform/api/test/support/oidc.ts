import { createServer, type Server } from 'node:http';
import { freePort } from '@agentstack/core';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

export interface OidcAccount {
  email: string;
  name: string;
}

export interface OidcServer {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Accounts the provider knows, by subject. */
  accounts: Map<string, OidcAccount>;
  /** Who the next login interaction signs in as (the user "typing their password" at the provider). */
  loginAs(subject: string): void;
  stop(): Promise<void>;
}

/**
 * A real OpenID Connect provider (`oidc-provider`) on loopback: discovery, authorization code + PKCE,
 * RS256 id tokens, userinfo. Its login and consent screens are replaced by an automatic login as the
 * subject the test chose, the way a person would complete them.
 */
export async function startOidcServer({ redirectUri }: { redirectUri: string }): Promise<OidcServer> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const clientId = 'agentsquads-test';
  const clientSecret = 'a-long-test-client-secret-of-the-relying-party';
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
  const accounts = new Map<string, OidcAccount>();
  let nextSubject: string | undefined;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: ['oidc-test-cookie-signing-key-0123456789'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx: unknown, sub: string) => {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        claims: async () => ({ sub, email: account.email, email_verified: true, name: account.name }),
      };
    },
    // Consent is given: every login is granted the scopes the client asked for.
    loadExistingGrant: async (ctx: {
      oidc: { client: { clientId: string }; session: { accountId: string }; provider: Provider };
    }) => {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email profile');
      grant.addOIDCClaims(['email', 'email_verified', 'name']);
      await grant.save();
      return grant;
    },
  });
  const handle = provider.callback();
  const server: Server = createServer((req, res) => {
    if (!req.url?.startsWith('/interaction/')) return handle(req, res);
    (async () => {
      await provider.interactionDetails(req, res);
      if (!nextSubject) throw new Error('test did not say who logs in');
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: nextSubject } },
        { mergeWithLastSubmission: false },
      );
    })().catch((err: Error) => {
      res.statusCode = 500;
      res.end(err.message);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    issuer,
    clientId,
    clientSecret,
    accounts,
    loginAs: (subject) => {
      nextSubject = subject;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
