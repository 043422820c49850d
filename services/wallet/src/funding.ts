import { transferWithAuthorizationTypes, usdcDomain } from '@agentstack/chain';
import {
  AppError,
  conflict,
  decodeCursor,
  formatUsdc,
  invalidRequest,
  newId,
  type Page,
  toPage,
} from '@agentstack/core';
import { withTransaction } from '@agentstack/db';
import { type Address, type Hex, verifyTypedData } from 'viem';
import { z } from 'zod';
import type { Ctx } from './context.js';
import type { FundRequestRow, JournalRow, StoredAuthorization, WalletDB, WalletRow } from './db.js';
import { amountFields, notifyOwner } from './notify.js';
import type { Reservation } from './reserve.js';
import { signUsdcTransfer } from './send.js';
import { store } from './store.js';

/**
 * Funding requests: the agent asks its owner for USDC; the owner approves with an EIP-3009 authorization
 * (owner → wallet, exactly the amount) that the service relays, so the owner pays no gas; or denies; or the
 * request expires (7 days by default) by a sweeper any replica may run.
 */

export interface FundRequestView {
  id: string;
  wallet: string;
  owner: string;
  amount: string;
  amountAtomic: string;
  reason: string;
  status: FundRequestRow['status'];
  requestedBy: FundRequestRow['requested_by'];
  decisionReason: string | null;
  txHash: string | null;
  createdAt: string;
  expiresAt: string;
  decidedAt: string | null;
  /** What the owner signs to approve (the EIP-712 message and domain of USDC's transferWithAuthorization). */
  approve?: {
    primaryType: 'TransferWithAuthorization';
    domain: ReturnType<typeof usdcDomain>;
    message: { from: string; to: string; value: string };
  };
}

export function fundRequestView(ctx: Ctx, row: FundRequestRow): FundRequestView {
  return {
    id: row.id,
    wallet: row.wallet,
    owner: row.owner,
    ...amountFields(row.amount),
    reason: row.reason,
    status: row.status,
    requestedBy: row.requested_by,
    decisionReason: row.decision_reason,
    txHash: row.tx_hash,
    createdAt: row.created_at.toISOString(),
    expiresAt: row.expires_at.toISOString(),
    decidedAt: row.decided_at?.toISOString() ?? null,
    ...(row.status === 'pending'
      ? {
          approve: {
            primaryType: 'TransferWithAuthorization' as const,
            domain: usdcDomain({ id: ctx.gateway.chain.id }, ctx.gateway.chain.usdc),
            message: { from: row.owner, to: row.wallet, value: row.amount.toString() },
          },
        }
      : {}),
  };
}

const requestCursor = z.object({ t: z.string(), id: z.string() });

/** A wallet's funding requests, newest first, optionally one status. */
export async function listFundRequests(
  ctx: Ctx,
  wallet: string,
  query: { limit: number; cursor?: string; status?: FundRequestRow['status'] },
): Promise<Page<FundRequestView>> {
  const after = decodeCursor(query.cursor, requestCursor);
  const rows = await store.listFundRequests(ctx.db, wallet, query.status, query.limit, after);
  return toPage(
    rows,
    query.limit,
    (r) => fundRequestView(ctx, r),
    (r) => ({ t: r.created_at.toISOString(), id: r.id }),
  );
}

export async function createFundRequest(
  ctx: Ctx,
  wallet: WalletRow,
  input: { amount: bigint; reason: string; requestedBy: 'owner' | 'agent' },
): Promise<FundRequestRow> {
  if (wallet.status !== 'active') throw new AppError('wallet_deactivated', 'this wallet was deactivated', 409);
  if (!wallet.owner) {
    throw new AppError('no_owner', 'this wallet has no owner to ask yet (claim it first with X-Claim-Token)', 409);
  }
  const owner = wallet.owner;
  const now = ctx.clock.now();
  return withTransaction(ctx.db, async (trx) => {
    const row = await store.insertFundRequest(trx, {
      id: newId('fr'),
      wallet: wallet.address,
      owner,
      amount: input.amount,
      reason: input.reason,
      status: 'pending',
      requested_by: input.requestedBy,
      created_at: now,
      expires_at: new Date(now.getTime() + ctx.settings.fundRequestTtlSeconds * 1000),
    });
    await notifyOwner(ctx, trx, wallet, 'fund_request.created', fundRequestView(ctx, row) as never);
    return row;
  });
}

const authField = 'body.authorization';

/** Checks an owner-signed authorization against the request before anything is charged or relayed. */
export async function checkOwnerAuthorization(
  ctx: Ctx,
  request: FundRequestRow,
  auth: StoredAuthorization,
): Promise<void> {
  const now = BigInt(Math.floor(ctx.clock.now().getTime() / 1000));
  if (auth.from.toLowerCase() !== request.owner.toLowerCase()) {
    throw invalidRequest(`authorization.from must be the owner ${request.owner}`, `${authField}.from`);
  }
  if (auth.to.toLowerCase() !== request.wallet.toLowerCase()) {
    throw invalidRequest(`authorization.to must be the wallet ${request.wallet}`, `${authField}.to`);
  }
  if (BigInt(auth.value) !== request.amount) {
    throw invalidRequest(
      `authorization.value must be exactly the requested ${request.amount} atomic USDC`,
      `${authField}.value`,
    );
  }
  if (BigInt(auth.validAfter) >= now) {
    throw invalidRequest('authorization.validAfter must be in the past', `${authField}.validAfter`);
  }
  if (BigInt(auth.validBefore) < now + 60n) {
    throw invalidRequest('authorization.validBefore must be at least a minute away', `${authField}.validBefore`);
  }
  const valid = await verifyTypedData({
    address: auth.from as Address,
    domain: usdcDomain({ id: ctx.gateway.chain.id }, ctx.gateway.chain.usdc),
    types: transferWithAuthorizationTypes,
    primaryType: 'TransferWithAuthorization',
    message: {
      from: auth.from as Address,
      to: auth.to as Address,
      value: BigInt(auth.value),
      validAfter: BigInt(auth.validAfter),
      validBefore: BigInt(auth.validBefore),
      nonce: auth.nonce as Hex,
    },
    signature: auth.signature as Hex,
  }).catch(() => false);
  if (!valid) {
    throw invalidRequest(
      'authorization.signature is not the owner’s EIP-712 signature of this transferWithAuthorization',
      `${authField}.signature`,
    );
  }
  if (await ctx.gateway.authorizationUsed(auth.from as Address, auth.nonce as Hex)) {
    throw invalidRequest('authorization.nonce was already used', `${authField}.nonce`);
  }
  const balance = await ctx.gateway.usdcBalance(auth.from as Address);
  if (balance < request.amount) {
    throw new AppError(
      'insufficient_funds',
      `the owner holds ${formatUsdc(balance)} USDC, the request is for ${formatUsdc(request.amount)}`,
      422,
      { details: { available: formatUsdc(balance), needed: formatUsdc(request.amount) } },
    );
  }
}

/** Refuses a request that is no longer pending, has expired, or has an approval already under way. */
export async function assertOpen(ctx: Ctx, db: Parameters<typeof store.getEntry>[0], request: FundRequestRow) {
  if (request.status !== 'pending') throw conflict(`this funding request is already ${request.status}`);
  if (request.expires_at <= ctx.clock.now()) throw conflict('this funding request has expired');
  if (request.journal_id) {
    const entry = await store.getEntry(db, request.journal_id);
    if (entry && entry.status !== 'failed') throw conflict('an approval of this request is already under way');
  }
}

/**
 * The journal reservation that moves the money: the owner's signed authorization relayed into the wallet,
 * or, when the owner is a managed wallet here, a transfer it signs itself under its own policy.
 */
export async function approvalReservation(
  ctx: Ctx,
  input: {
    request: FundRequestRow;
    wallet: WalletRow;
    auth?: StoredAuthorization;
    ownerWallet?: WalletRow;
    actor: 'owner' | 'agent';
    caller: string;
    idempotencyRef?: string;
  },
): Promise<Reservation> {
  const { request } = input;
  const fromBlock = (await ctx.gateway.recentBlock()).toString();
  const guard = {
    guard: async (trx: Parameters<NonNullable<Reservation['guard']>>[0]) => {
      const locked = await store.lockFundRequest(trx, request.id);
      if (!locked) throw conflict('funding request vanished');
      await assertOpen(ctx, trx, locked);
    },
    afterInsert: async (trx: Parameters<NonNullable<Reservation['afterInsert']>>[0], entry: JournalRow) => {
      await store.updateFundRequest(trx, request.id, { journal_id: entry.id });
    },
  };
  if (input.auth) {
    const auth = input.auth;
    return {
      wallet: request.wallet,
      kind: 'fund',
      scope: null,
      direction: 'in',
      asset: 'USDC',
      amount: request.amount,
      usdcValue: request.amount,
      usdcOut: 0n,
      counterparty: request.owner.toLowerCase(),
      method: 'relay3009',
      actor: input.actor,
      caller: input.caller,
      ...(input.idempotencyRef ? { idempotencyRef: input.idempotencyRef } : {}),
      feeSettled: false,
      policy: false,
      details: { fundRequest: request.id },
      prepare: async () => ({ auth, details: { fromBlock } }),
      ...guard,
    };
  }
  const owner = input.ownerWallet!;
  const account = ctx.keys.account(owner.address, owner.sealed_key);
  return {
    wallet: owner.address,
    kind: 'fund',
    scope: 'send',
    direction: 'out',
    asset: 'USDC',
    amount: request.amount,
    usdcValue: request.amount,
    usdcOut: request.amount,
    counterparty: request.wallet.toLowerCase(),
    method: 'relay3009',
    actor: input.actor,
    caller: input.caller,
    ...(input.idempotencyRef ? { idempotencyRef: input.idempotencyRef } : {}),
    feeSettled: false,
    policy: true,
    details: { fundRequest: request.id },
    prepare: async () => ({
      auth: await signUsdcTransfer(ctx, account, request.wallet as Address, request.amount),
      details: { fromBlock },
    }),
    ...guard,
  };
}

/** After the approval's transfer finished: approve the request (or leave it open when the transfer failed). */
export async function settleApproval(ctx: Ctx, request: FundRequestRow, entry: JournalRow): Promise<FundRequestRow> {
  if (entry.status !== 'confirmed') return (await store.getFundRequest(ctx.db, request.id)) ?? request;
  return withTransaction<WalletDB, FundRequestRow>(ctx.db, async (trx) => {
    const updated = await trx
      .updateTable('fund_requests')
      .set({ status: 'approved', tx_hash: entry.tx_hash, decided_at: ctx.clock.now() })
      .where('id', '=', request.id)
      .where('status', '=', 'pending')
      .returningAll()
      .executeTakeFirst();
    if (!updated) return (await store.getFundRequest(trx, request.id)) ?? request;
    const wallet = await store.getWallet(trx, request.wallet);
    if (wallet) await notifyOwner(ctx, trx, wallet, 'fund_request.approved', fundRequestView(ctx, updated) as never);
    return updated;
  });
}

export async function denyFundRequest(
  ctx: Ctx,
  request: FundRequestRow,
  reason: string | null,
): Promise<FundRequestRow> {
  return withTransaction<WalletDB, FundRequestRow>(ctx.db, async (trx) => {
    const locked = await store.lockFundRequest(trx, request.id);
    if (!locked) throw conflict('funding request vanished');
    await assertOpen(ctx, trx, locked);
    const updated = (await store.updateFundRequest(trx, request.id, {
      status: 'denied',
      decision_reason: reason,
      decided_at: ctx.clock.now(),
    }))!;
    const wallet = await store.getWallet(trx, request.wallet);
    if (wallet) await notifyOwner(ctx, trx, wallet, 'fund_request.denied', fundRequestView(ctx, updated) as never);
    return updated;
  });
}

/** Expires pending requests past their time; skips rows another replica holds. */
export async function expireFundRequests(ctx: Ctx, limit = 100): Promise<number> {
  return withTransaction<WalletDB, number>(ctx.db, async (trx) => {
    const due = await store.expiredFundRequests(trx, ctx.clock.now(), limit);
    let expired = 0;
    for (const request of due) {
      if (request.journal_id) {
        const entry = await store.getEntry(trx, request.journal_id);
        if (entry && entry.status !== 'failed') continue; // an approval is moving the money right now
      }
      const updated = (await store.updateFundRequest(trx, request.id, {
        status: 'expired',
        decided_at: ctx.clock.now(),
      }))!;
      const wallet = await store.getWallet(trx, request.wallet);
      if (wallet) await notifyOwner(ctx, trx, wallet, 'fund_request.expired', fundRequestView(ctx, updated) as never);
      expired++;
    }
    return expired;
  });
}
