import { AppError, forbidden } from '@agentstack/core';
import type { Ctx } from './context.js';
import type { WalletRow } from './db.js';
import { hashToken } from './keys.js';
import { store } from './store.js';

export type Role = 'owner' | 'agent';

/** Who is calling: the x402 payer, or the managed wallet whose agent token the request carries. */
export interface Caller {
  address: `0x${string}`;
  /** Set when the request carries a valid agent token: the wallet it belongs to. */
  agentOf: WalletRow | null;
}

export const CLAIM_HEADER = 'x-claim-token';
const claimField = 'header.x-claim-token';

const unauthorized = (message: string) => new AppError('unauthorized', message, 401, { field: 'header.authorization' });

/** Reads `Authorization: Bearer <agentToken>`; a present but unknown token is a 401, never a silent fallback. */
export async function agentFromHeader(ctx: Ctx, header: string | undefined): Promise<WalletRow | null> {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (!match) throw unauthorized('Authorization must be "Bearer <agentToken>"');
  const wallet = await store.walletByAgentToken(ctx.db, hashToken(match[1]!));
  if (wallet?.status !== 'active') throw unauthorized('this agent token is not valid (revoked, or never issued)');
  return wallet;
}

export interface Access {
  role: Role;
  /** Set when this request bound the owner with a claim token (undone if its payment then fails). */
  claimed?: { hash: string; at: Date };
}

/**
 * The caller's role on a wallet: its agent (the token is that wallet's), its owner, or — with a valid,
 * unused, unexpired `X-Claim-Token` — its new owner, bound now. Anyone else gets 403.
 */
export async function accessTo(
  ctx: Ctx,
  wallet: WalletRow,
  caller: Caller,
  claimToken: string | undefined,
): Promise<Access> {
  if (caller.agentOf && caller.agentOf.address === wallet.address) return { role: 'agent' };
  if (wallet.owner !== null && wallet.owner === caller.address) return { role: 'owner' };
  if (claimToken !== undefined) {
    const hash = hashToken(claimToken.trim());
    const now = ctx.clock.now();
    const result = await store.claim(ctx.db, wallet.address, hash, caller.address, now);
    switch (result) {
      case 'claimed':
        ctx.log.info({ wallet: wallet.address, owner: caller.address }, 'wallet claimed');
        return { role: 'owner', claimed: { hash, at: now } };
      case 'already_owned':
        throw new AppError('conflict', 'X-Claim-Token was already used: this wallet has an owner', 409, {
          field: claimField,
        });
      case 'expired':
        throw new AppError('forbidden', 'X-Claim-Token has expired; the wallet can no longer be claimed', 403, {
          field: claimField,
        });
      case 'wrong_token':
        throw new AppError('forbidden', 'X-Claim-Token is not this wallet’s claim token', 403, { field: claimField });
    }
  }
  throw forbidden(
    wallet.owner === null
      ? 'this wallet has no owner yet: claim it with X-Claim-Token on a paid request, or use its agent token'
      : 'this wallet belongs to another owner',
  );
}

/** Undoes a claim made by a request whose payment then did not settle. */
export async function undoClaim(ctx: Ctx, wallet: string, owner: string, claimed: { hash: string; at: Date }) {
  await store.unclaim(ctx.db, wallet, claimed.hash, owner, claimed.at);
}
