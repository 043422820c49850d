import { createHash } from 'node:crypto';
import {
  AppError,
  BlockedDestinationError,
  decodeCursor,
  formatUsdc,
  invalidRequest,
  type Page,
  randomToken,
  rateLimited,
  toPage,
} from '@agentstack/core';
import { EMPTY_POLICY, policyFromJson, policyToJson } from '@agentstack/sdk/policy';
import { checkWebhookUrl } from '@agentstack/webhooks';
import type { Address } from 'viem';
import { z } from 'zod';
import { type SafetyState, safetyState } from './breaker.js';
import type { Ctx } from './context.js';
import type { JournalRow, WalletRow } from './db.js';
import { execute, release } from './execute.js';
import { hashToken, newAgentToken, newClaimToken } from './keys.js';
import { reserve } from './reserve.js';
import { sendReservation } from './send.js';
import { store } from './store.js';
import { formatEth } from './views.js';

export interface CreatedWallet {
  address: string;
  chain: string;
  network: string;
  label: string | null;
  balance: string;
  balanceAtomic: string;
  funded: false;
  claimToken: string;
  claimTokenExpiresAt: string;
  agentToken: string;
  createdAt: string;
}

/** Fixed-window rate limit per client (IPv6 clients by their /64: one host usually owns the whole prefix). */
export async function limitCreates(ctx: Ctx, clientIp: string): Promise<void> {
  const key = `create:${clientKey(clientIp)}`;
  const windowMs = ctx.settings.createWindowSeconds * 1000;
  const now = ctx.clock.now().getTime();
  const windowStart = new Date(now - (now % windowMs));
  const count = await store.hit(ctx.db, key, windowStart);
  if (count > ctx.settings.createLimit) {
    throw rateLimited(
      `at most ${ctx.settings.createLimit} wallets per ${ctx.settings.createWindowSeconds} s from one client`,
      (windowStart.getTime() + windowMs - now) / 1000,
    );
  }
}

export function clientKey(ip: string): string {
  const clean = ip.replace(/^::ffff:/, '');
  if (!clean.includes(':')) return clean;
  const groups = clean.split('::')[0]!.split(':');
  return `${groups.slice(0, 4).join(':')}::/64`;
}

export async function createWallet(ctx: Ctx, input: { label: string | null }): Promise<CreatedWallet> {
  const { address, sealedKey } = ctx.keys.generate();
  const claimToken = newClaimToken();
  const agentToken = newAgentToken();
  const now = ctx.clock.now();
  const claimExpires = new Date(now.getTime() + ctx.settings.claimTokenTtlSeconds * 1000);
  await store.insertWallet(ctx.db, {
    address,
    chain: ctx.settings.chainName,
    label: input.label,
    sealed_key: sealedKey,
    owner: null,
    claim_token_hash: hashToken(claimToken),
    claim_expires_at: claimExpires,
    agent_token_hash: hashToken(agentToken),
    policy: JSON.stringify(policyToJson(EMPTY_POLICY)),
    created_at: now,
  });
  ctx.log.info({ wallet: address }, 'wallet created');
  return {
    address,
    chain: ctx.settings.chainName,
    network: ctx.settings.network,
    label: input.label,
    balance: '0.00',
    balanceAtomic: '0',
    funded: false,
    claimToken,
    claimTokenExpiresAt: claimExpires.toISOString(),
    agentToken,
    createdAt: now.toISOString(),
  };
}

/**
 * Idempotency-Key for the free create route, scoped to the client: the first response (it carries the
 * one-time tokens) is kept sealed for 24 hours so a retry gets the same wallet, not a second one.
 */
export async function idempotentCreate(
  ctx: Ctx,
  clientIp: string,
  key: string | undefined,
  body: string,
  create: () => Promise<CreatedWallet>,
): Promise<{ wallet: CreatedWallet; replayed: boolean }> {
  if (key === undefined) return { wallet: await create(), replayed: false };
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw invalidRequest('Idempotency-Key must be 1-255 printable ASCII characters', 'header.idempotency-key');
  }
  const scope = createHash('sha256')
    .update(`${clientKey(clientIp)}\n${key}`)
    .digest('hex');
  const requestHash = createHash('sha256').update(body).digest('hex');
  const now = ctx.clock.now();
  await ctx.db
    .deleteFrom('create_idempotency')
    .where('created_at', '<', new Date(now.getTime() - 86_400_000))
    .execute();
  const claimed = await ctx.db
    .insertInto('create_idempotency')
    .values({ scope, request_hash: requestHash, sealed_response: null, created_at: now })
    .onConflict((oc) => oc.column('scope').doNothing())
    .executeTakeFirst();
  if (Number(claimed.numInsertedOrUpdatedRows ?? 0n) === 0) {
    const row = await ctx.db.selectFrom('create_idempotency').selectAll().where('scope', '=', scope).executeTakeFirst();
    if (row && row.request_hash !== requestHash) {
      throw new AppError('conflict', 'this Idempotency-Key was already used with a different request', 409, {
        field: 'header.idempotency-key',
      });
    }
    if (!row?.sealed_response) {
      throw new AppError('conflict', 'a request with this Idempotency-Key is still in progress', 409, {
        field: 'header.idempotency-key',
      });
    }
    return { wallet: JSON.parse(ctx.open(row.sealed_response, scope)) as CreatedWallet, replayed: true };
  }
  try {
    const wallet = await create();
    await ctx.db
      .updateTable('create_idempotency')
      .set({ sealed_response: ctx.seal(JSON.stringify(wallet), scope) })
      .where('scope', '=', scope)
      .execute();
    return { wallet, replayed: false };
  } catch (err) {
    await ctx.db.deleteFrom('create_idempotency').where('scope', '=', scope).execute();
    throw err;
  }
}

export interface WalletView {
  address: string;
  chain: string;
  network: string;
  label: string | null;
  status: WalletRow['status'];
  owner: string | null;
  claimed: boolean;
  balances: { usdc: string; usdcAtomic: string; eth: string; ethAtomic: string };
  funded: boolean;
  policy: ReturnType<typeof policyToJson>;
  safety: SafetyState;
  createdAt: string;
  deactivatedAt: string | null;
}

export async function walletView(ctx: Ctx, wallet: WalletRow): Promise<WalletView> {
  const [usdc, eth, safety] = await Promise.all([
    ctx.gateway.usdcBalance(wallet.address as Address),
    ctx.gateway.ethBalance(wallet.address as Address),
    safetyState(ctx, wallet.address),
  ]);
  return {
    address: wallet.address,
    chain: wallet.chain,
    network: ctx.settings.network,
    label: wallet.label,
    status: wallet.status,
    owner: wallet.owner,
    claimed: wallet.owner !== null,
    balances: { usdc: formatUsdc(usdc), usdcAtomic: usdc.toString(), eth: formatEth(eth), ethAtomic: eth.toString() },
    funded: usdc > 0n || eth > 0n,
    policy: policyToJson(policyFromJson(wallet.policy)),
    safety,
    createdAt: wallet.created_at.toISOString(),
    deactivatedAt: wallet.deactivated_at?.toISOString() ?? null,
  };
}

export interface WalletSummary {
  address: string;
  label: string | null;
  status: WalletRow['status'];
  createdAt: string;
}

const listCursor = z.object({ t: z.string(), address: z.string() });

export async function listWallets(
  ctx: Ctx,
  owner: string,
  { limit, cursor }: { limit: number; cursor?: string },
): Promise<Page<WalletSummary>> {
  const after = decodeCursor(cursor, listCursor);
  const rows = await store.listOwned(ctx.db, owner, limit, after);
  return toPage(
    rows,
    limit,
    (w) => ({ address: w.address, label: w.label, status: w.status, createdAt: w.created_at.toISOString() }),
    (w) => ({ t: w.created_at.toISOString(), address: w.address }),
  );
}

/**
 * Deactivates a wallet; with `sweepTo`, first moves its remaining USDC there (journaled like any send, not
 * counted by the policy: this is the owner closing the wallet). The agent token stops working.
 */
export async function deactivateWallet(
  ctx: Ctx,
  wallet: WalletRow,
  input: { sweepTo?: Address; caller: string; idempotencyRef?: string },
): Promise<{ sweep: JournalRow | null; ethRemaining: string }> {
  let sweep: JournalRow | null = null;
  if (input.sweepTo) {
    const balance = await ctx.gateway.usdcBalance(wallet.address as Address);
    const pending = await store.pendingOutgoing(ctx.db, wallet.address, 'USDC');
    const amount = balance - pending;
    if (amount > 0n) {
      const reservation = await sendReservation(ctx, {
        wallet,
        to: input.sweepTo,
        asset: 'USDC',
        amount,
        kind: 'sweep',
        actor: 'owner',
        caller: input.caller,
        ...(input.idempotencyRef ? { idempotencyRef: input.idempotencyRef } : {}),
      });
      const { entry } = await reserve(ctx, { ...reservation, feeSettled: true });
      try {
        sweep = await execute(ctx, entry);
      } finally {
        await release(ctx, entry);
      }
      if (sweep.status === 'failed') {
        throw new AppError(
          'transaction_failed',
          `sweeping the USDC failed: ${sweep.error}; the wallet stays active`,
          422,
          {
            details: { journalId: sweep.id },
          },
        );
      }
    }
  }
  await store.deactivate(ctx.db, wallet.address, ctx.clock.now(), hashToken(randomToken(43)));
  const eth = await ctx.gateway.ethBalance(wallet.address as Address);
  return { sweep, ethRemaining: formatEth(eth) };
}

export async function rotateAgentToken(ctx: Ctx, wallet: WalletRow): Promise<string> {
  const token = newAgentToken();
  await store.setAgentToken(ctx.db, wallet.address, hashToken(token));
  return token;
}

export interface NotificationView {
  webhook: null | {
    id: string;
    url: string;
    events: string[] | null;
    status: string;
    disabledReason: string | null;
    /** Only in the answer that set it without a secret of the caller's: shown once. */
    secret?: string;
  };
  email: string | null;
  emailEnabled: boolean;
}

export async function notificationView(ctx: Ctx, wallet: string, secret?: string): Promise<NotificationView> {
  const settings = await store.notificationSettings(ctx.db, wallet);
  const target = settings?.webhook_target_id ? await ctx.outbox.getTarget(settings.webhook_target_id) : undefined;
  return {
    webhook:
      target && target.status !== 'deleted'
        ? {
            id: target.id,
            url: target.url,
            events: target.events,
            status: target.status,
            disabledReason: target.disabledReason,
            ...(secret ? { secret } : {}),
          }
        : null,
    email: settings?.email ?? null,
    emailEnabled: Boolean(ctx.mailer),
  };
}

/**
 * Where the owner hears about funding requests and pauses. `webhookUrl: null` removes the webhook; a new URL
 * replaces it (its log stays readable). Without `webhookSecret` one is generated and returned once.
 */
export async function setNotifications(
  ctx: Ctx,
  wallet: WalletRow,
  input: {
    webhookUrl?: string | null;
    webhookSecret?: string;
    events?: string[] | null;
    email?: string | null;
    checkUrl: (url: URL) => Promise<unknown>;
  },
): Promise<NotificationView> {
  const current = await store.notificationSettings(ctx.db, wallet.address);
  let targetId = current?.webhook_target_id ?? null;
  let generated: string | undefined;
  if (input.webhookUrl !== undefined) {
    if (input.webhookUrl !== null) {
      const problem = checkWebhookUrl(input.webhookUrl);
      if (problem) throw invalidRequest(`webhookUrl ${problem}`, 'body.webhookUrl');
      try {
        await input.checkUrl(new URL(input.webhookUrl));
      } catch (err) {
        if (err instanceof BlockedDestinationError) {
          throw invalidRequest(`webhookUrl refused: ${err.reason}`, 'body.webhookUrl');
        }
        throw err;
      }
    }
    if (targetId) await ctx.outbox.deleteTarget(targetId);
    targetId = null;
    if (input.webhookUrl !== null) {
      if (input.webhookSecret === undefined) generated = `whsec_${randomToken(40)}`;
      const secret = input.webhookSecret ?? generated!;
      const target = await ctx.outbox.createTarget({
        owner: wallet.address,
        url: input.webhookUrl,
        secret,
        events: input.events ?? null,
      });
      targetId = target.id;
    }
  } else if (targetId && (input.webhookSecret !== undefined || input.events !== undefined)) {
    await ctx.outbox.updateTarget(targetId, {
      ...(input.webhookSecret !== undefined ? { secret: input.webhookSecret } : {}),
      ...(input.events !== undefined ? { events: input.events } : {}),
      enabled: true,
    });
  }
  const email = input.email === undefined ? (current?.email ?? null) : input.email;
  await store.setNotificationSettings(ctx.db, wallet.address, { webhook_target_id: targetId, email }, ctx.clock.now());
  return notificationView(ctx, wallet.address, generated);
}
