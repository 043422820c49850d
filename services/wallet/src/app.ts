import { createHash, timingSafeEqual } from 'node:crypto';
import {
  AppError,
  buildLlmsTxt,
  buildOpenApi,
  type CoreVariables,
  createDestinationCheck,
  errorHandler,
  forbidden,
  formatUsdc,
  invalidRequest,
  notFound,
  notFoundHandler,
  paginationQuery,
  type Resolver,
  requestLogger,
  utcDay,
  validate,
} from '@agentstack/core';
import { evaluatePolicy, type Policy, policyFromJson, policyInputSchema, policyToJson } from '@agentstack/sdk/policy';
import type { PaidVariables, PaymentGate } from '@agentstack/x402';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { PaymentRequirements } from '@x402/core/types';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import type { z } from 'zod';
import { type Access, accessTo, agentFromHeader, type Caller, CLAIM_HEADER, type Role, undoClaim } from './access.js';
import {
  addressParam,
  approveBody,
  createBody,
  deleteQuery,
  deliveriesQuery,
  denyBody,
  fundRequestBody,
  fundRequestParam,
  fundRequestsQuery,
  killSwitchBody,
  notificationsBody,
  pauseBody,
  payBody,
  resumeBody,
  routeSpecs,
  sendBody,
  swapBody,
} from './api.js';
import { killSwitch, pauseWallet, resumeWallet, safetyState, setKillSwitch } from './breaker.js';
import type { Ctx } from './context.js';
import type { FundRequestRow, JournalRow, StoredAuthorization, WalletRow } from './db.js';
import { killSwitchEngaged, policyViolation, transactionFailed, walletPaused } from './errors.js';
import { execute, markConfirmed, markFailed, release } from './execute.js';
import {
  approvalReservation,
  assertOpen,
  checkOwnerAuthorization,
  createFundRequest,
  denyFundRequest,
  fundRequestView,
  listFundRequests,
  settleApproval,
} from './funding.js';
import { llmsGuide } from './guide.js';
import { history, indexIncoming } from './history.js';
import { emailLog } from './notify.js';
import { checkPayHeaders, checkPayUrl, payOnBehalf } from './pay.js';
import { type Reservation, reserve } from './reserve.js';
import { sendReservation } from './send.js';
import { type OpScope, store } from './store.js';
import { swapReservation, swapView } from './swap.js';
import { entryView, formatEth } from './views.js';
import {
  createWallet,
  deactivateWallet,
  idempotentCreate,
  limitCreates,
  listWallets,
  notificationView,
  rotateAgentToken,
  setNotifications,
  walletView,
} from './wallets.js';
import { requiredFor, signX402Payment } from './x402-signer.js';

type Vars = CoreVariables &
  PaidVariables & {
    agent: WalletRow | null;
    feeEntry: JournalRow | undefined;
    caller: Caller;
    wallet: WalletRow;
    access: Access;
    entry: JournalRow | undefined;
    resumed: boolean;
    fundRequest: FundRequestRow;
  };
type C = Context<{ Variables: Vars }>;

// Hono's `valid()` is typed from the route's validators; handlers here read it through this one cast.
const valid = <S extends z.ZodType>(c: C, target: 'json' | 'param' | 'query', _schema: S) =>
  (c.req.valid as (t: string) => unknown)(target) as z.output<S>;

/** 200 confirmed, 202 still pending (history shows the end), 422 failed on-chain. */
function respondEntry(c: C, entry: JournalRow, view: Record<string, unknown> = entryView(entry)) {
  if (entry.status === 'failed') throw transactionFailed(entry.error ?? 'failed', { entry: view });
  return c.json(view, entry.status === 'confirmed' ? 200 : 202);
}

export interface AppOptions {
  ctx: Ctx;
  gate: PaymentGate;
  /** Hosts `pay` and webhooks may reach even if they resolve to private addresses. */
  allowHosts: string[];
  resolve?: Resolver;
}

export function buildApp({ ctx, gate, allowHosts, resolve }: AppOptions) {
  const app = new Hono<{ Variables: Vars }>();
  const { prices } = ctx.settings;
  const checkDestination = createDestinationCheck({ allowHosts, ...(resolve ? { resolve } : {}) });
  const specs = routeSpecs(prices);
  const info = {
    title: 'wallet.sh',
    version: '1.0.0',
    description:
      'Wallets for agents: managed keys, budgets (policy), an execution journal, a circuit breaker, swaps, funding ' +
      'requests and pay-on-behalf, paid per call with x402.',
    guide: llmsGuide({
      network: ctx.settings.network,
      usdc: ctx.gateway.usdc,
      payTo: ctx.settings.payTo,
      breakerThreshold: ctx.settings.breakerThreshold,
      fundRequestTtlSeconds: ctx.settings.fundRequestTtlSeconds,
    }),
  };
  const openApi = buildOpenApi(info, specs);
  const llms = buildLlmsTxt(info, specs);

  app.use('*', requestLogger(ctx.log));
  app.onError(errorHandler(ctx.log));
  app.notFound(notFoundHandler);

  app.get('/v1/health', async (c) => {
    const gasEth = await ctx.gateway.ethBalance(ctx.gateway.relayer.address).catch(() => undefined);
    return c.json({
      status: 'ok',
      service: 'wallet',
      chain: ctx.settings.chainName,
      network: ctx.settings.network,
      killSwitch: await killSwitch(ctx),
      // The account that pays gas for gasless sends and swaps: operators watch that it holds ETH.
      gasAccount: {
        address: ctx.gateway.relayer.address,
        eth: gasEth === undefined ? null : formatEth(gasEth),
        ok: gasEth !== undefined && gasEth > 0n,
      },
    });
  });
  app.get('/openapi.json', (c) => c.json(openApi));
  app.get('/llms.txt', (c) => c.text(llms));

  // --- the pieces every paid wallet route is made of ------------------------------------------------------

  const identifyAgent: MiddlewareHandler<{ Variables: Vars }> = async (c, next) => {
    c.set('agent', await agentFromHeader(ctx, c.req.header('authorization')));
    await next();
  };

  /** The agent's route fee, signed with the managed key and counted by its policy before it is offered. */
  const agentFee = async (c: C, requirements: PaymentRequirements) => {
    const agent = c.get('agent');
    if (!agent) return undefined;
    const account = ctx.keys.account(agent.address, agent.sealed_key);
    const { payload, auth } = await signX402Payment(account, ctx.gateway, requiredFor(requirements, c.req.url));
    const amount = BigInt(requirements.amount);
    const { entry } = await reserve(ctx, {
      wallet: agent.address,
      kind: 'fee',
      scope: null,
      direction: 'out',
      asset: 'USDC',
      amount,
      usdcValue: amount,
      usdcOut: amount,
      counterparty: requirements.payTo.toLowerCase(),
      service: new URL(c.req.url).host.toLowerCase(),
      method: 'external3009',
      actor: 'agent',
      caller: agent.address,
      feeSettled: true,
      policy: true,
      details: { route: `${c.req.method} ${c.req.routePath}`, fromBlock: (await ctx.gateway.recentBlock()).toString() },
      prepare: async () => ({ auth }),
    });
    c.set('feeEntry', entry);
    return payload;
  };

  /** Records how the agent's fee ended: settled (confirmed) or not used (failed: refused, or an idempotent replay). */
  const finalizeFee: MiddlewareHandler<{ Variables: Vars }> = async (c, next) => {
    try {
      await next();
    } finally {
      const fee = c.get('feeEntry');
      if (fee) {
        const tx = c.get('payment')?.transaction;
        if (tx) await markConfirmed(ctx, fee, tx);
        else
          await markFailed(ctx, fee, 'the route fee was not settled (the request was refused or replayed)', {
            onChain: false,
          });
      }
    }
  };

  const callerOf = (c: C): Caller => {
    const agent = c.get('agent');
    return agent
      ? { address: agent.address as `0x${string}`, agentOf: agent }
      : { address: c.get('payer'), agentOf: null };
  };

  const ownerOnly = (role: Role) => {
    if (role !== 'owner')
      throw forbidden(
        'only the wallet’s owner may do this; agent tokens are limited to send, swap, pay, fund-request and reads',
      );
  };

  interface PaidOptions {
    price: bigint;
    settle: 'first' | 'after-success';
    /** What the route acts on: a wallet in the path, a funding request in the path, or just the caller. */
    target: 'wallet' | 'fundRequest' | 'caller';
    roles: Role[];
    precheck?: (c: C) => Promise<void>;
    onSettleFailure?: (c: C) => Promise<void>;
  }

  const paid = (o: PaidOptions): MiddlewareHandler<{ Variables: Vars }>[] => [
    identifyAgent,
    finalizeFee,
    gate.paid({
      price: o.price,
      settle: o.settle,
      internalPayment: (c, requirements) => agentFee(c as C, requirements),
      precheck: async (raw) => {
        const c = raw as C;
        const caller = callerOf(c);
        c.set('caller', caller);
        c.set('resumed', false);
        if (o.target !== 'caller') {
          let address: string;
          if (o.target === 'fundRequest') {
            const request = await store.getFundRequest(ctx.db, valid(c, 'param', fundRequestParam).id);
            if (!request) throw notFound('funding request');
            c.set('fundRequest', request);
            address = request.wallet;
          } else {
            address = valid(c, 'param', addressParam).address;
          }
          const wallet = await store.getWallet(ctx.db, address);
          if (!wallet) throw notFound('wallet');
          const access = await accessTo(ctx, wallet, caller, c.req.header(CLAIM_HEADER));
          if (!o.roles.includes(access.role)) ownerOnly(access.role);
          c.set('wallet', access.claimed ? { ...wallet, owner: caller.address } : wallet);
          c.set('access', access);
        }
        if (o.precheck) await o.precheck(c);
      },
      onSettleFailure: async (raw) => {
        const c = raw as C;
        const access = c.get('access');
        if (access?.claimed) await undoClaim(ctx, c.get('wallet').address, c.get('caller').address, access.claimed);
        const entry = c.get('entry');
        if (entry && !c.get('resumed') && entry.status !== 'failed') {
          await markFailed(ctx, entry, 'the route fee did not settle; nothing was sent', { onChain: false });
        }
        if (o.onSettleFailure) await o.onSettleFailure(c);
      },
    }) as unknown as MiddlewareHandler<{ Variables: Vars }>,
  ];

  const idempotencyRef = (c: C): string | undefined => {
    const key = c.req.header('idempotency-key');
    if (!key) return undefined;
    return createHash('sha256')
      .update(`${c.get('payer')}\n${c.req.method} ${c.req.path}\n${key}`)
      .digest('hex');
  };

  const actorOf = (c: C): 'owner' | 'agent' => c.get('access').role;

  /** Refuses before charging when the scope is paused or the kill switch is on (the reservation re-checks). */
  const assertOpenScope = async (wallet: WalletRow, scope: OpScope) => {
    const operator = await store.operatorState(ctx.db);
    if (ctx.settings.killSwitchFromEnv || operator.kill_switch) {
      throw killSwitchEngaged(operator.reason ?? (ctx.settings.killSwitchFromEnv ? 'WALLET_KILL_SWITCH' : null));
    }
    const pauses = await store.pauses(ctx.db, wallet.address);
    const pause = pauses.find((p) => p.scope === 'all') ?? pauses.find((p) => p.scope === scope);
    if (pause) throw walletPaused(pause.scope, pause.reason, pause.source);
    if (wallet.status !== 'active') throw new AppError('wallet_deactivated', 'this wallet was deactivated', 409);
  };

  /** Reserves in precheck (policy + journal before the fee settles), records it on the context. */
  const reserveOp = async (c: C, reservation: Reservation) => {
    const { entry, resumed } = await reserve(ctx, reservation);
    c.set('entry', entry);
    c.set('resumed', resumed);
  };

  /** Runs a reserved entry in the handler, after the fee settled. */
  const runEntry = async (c: C): Promise<JournalRow> => {
    let entry = c.get('entry')!;
    if (c.get('resumed')) {
      // A retry of a request whose process died: take the entry over if nobody alive is driving it.
      if (entry.status === 'confirmed' || entry.status === 'failed') return entry;
      if (
        entry.executor !== null &&
        entry.executor !== ctx.instance.key &&
        (await ctx.instance.isAlive(entry.executor))
      ) {
        return entry;
      }
      entry = (await store.takeEntry(ctx.db, entry.id, entry.executor, ctx.instance.key)) ?? entry;
    } else if (entry.status !== 'failed') {
      entry = (await store.updateEntry(ctx.db, entry.id, { fee_settled: true }, ctx.clock.now())) ?? entry;
    }
    let latest = entry;
    try {
      latest = await execute(ctx, entry, undefined, { resumed: c.get('resumed') });
      return latest;
    } finally {
      await release(ctx, latest);
    }
  };

  // --- 1. create (free) ---------------------------------------------------------------------------------

  app.post('/v1/wallets', validate('json', createBody), async (c) => {
    const body = valid(c as C, 'json', createBody);
    if (body.chain !== undefined && body.chain !== ctx.settings.chainName && body.chain !== ctx.settings.network) {
      throw invalidRequest(
        `this service runs on ${ctx.settings.chainName} (${ctx.settings.network}); chain must be that or omitted`,
        'body.chain',
      );
    }
    const ip = clientIp(c as C, ctx.settings.trustProxy);
    await limitCreates(ctx, ip);
    const { wallet, replayed } = await idempotentCreate(
      ctx,
      ip,
      c.req.header('idempotency-key'),
      JSON.stringify(body),
      () => createWallet(ctx, { label: body.label ?? null }),
    );
    if (replayed) c.header('idempotent-replayed', 'true');
    c.header('cache-control', 'no-store');
    return c.json(wallet, 201);
  });

  // --- 2. list ------------------------------------------------------------------------------------------

  app.get(
    '/v1/wallets',
    validate('query', paginationQuery),
    ...paid({ price: prices.list, settle: 'after-success', target: 'caller', roles: ['owner', 'agent'] }),
    async (c) => {
      const query = valid(c, 'query', paginationQuery);
      return c.json(await listWallets(ctx, c.get('caller').address, query));
    },
  );

  // --- 3. details ---------------------------------------------------------------------------------------

  app.get(
    '/v1/wallets/:address',
    validate('param', addressParam),
    ...paid({ price: prices.get, settle: 'after-success', target: 'wallet', roles: ['owner', 'agent'] }),
    async (c) => c.json(await walletView(ctx, c.get('wallet'))),
  );

  // --- 4. deactivate ------------------------------------------------------------------------------------

  const deleteOptions = (settle: 'first' | 'after-success') =>
    paid({
      price: prices.delete,
      settle,
      target: 'wallet',
      roles: ['owner'],
      precheck: async (c) => {
        const wallet = c.get('wallet');
        if (wallet.status !== 'active')
          throw new AppError('wallet_deactivated', 'this wallet is already deactivated', 409);
        if (settle === 'first') {
          const operator = await store.operatorState(ctx.db);
          if (ctx.settings.killSwitchFromEnv || operator.kill_switch) throw killSwitchEngaged(operator.reason);
        }
      },
    });
  // Settles first only when it moves money (sweepTo); the gate is chosen per request.
  const [agentIdentity, feeRecorder, sweepingGate] = deleteOptions('first');
  const plainGate = deleteOptions('after-success')[2]!;
  const deleteHandler = async (c: C) => {
    const { sweepTo } = valid(c, 'query', deleteQuery);
    const result = await deactivateWallet(ctx, c.get('wallet'), {
      ...(sweepTo ? { sweepTo } : {}),
      caller: c.get('caller').address,
      ...(idempotencyRef(c) ? { idempotencyRef: idempotencyRef(c)! } : {}),
    });
    return c.json({
      address: c.get('wallet').address,
      status: 'deactivated',
      sweep: result.sweep ? entryView(result.sweep) : null,
      ethRemaining: result.ethRemaining,
    });
  };
  app.delete(
    '/v1/wallets/:address',
    validate('param', addressParam),
    validate('query', deleteQuery),
    agentIdentity!,
    feeRecorder!,
    (c, next) => (valid(c as C, 'query', deleteQuery).sweepTo ? sweepingGate! : plainGate)(c, next),
    deleteHandler,
  );

  // --- 5. send ------------------------------------------------------------------------------------------

  app.post(
    '/v1/wallets/:address/send',
    validate('param', addressParam),
    validate('json', sendBody),
    ...paid({
      price: prices.send,
      settle: 'first',
      target: 'wallet',
      roles: ['owner', 'agent'],
      precheck: async (c) => {
        const wallet = c.get('wallet');
        const body = valid(c, 'json', sendBody);
        if (body.to === wallet.address) throw invalidRequest('a wallet cannot send to itself', 'body.to');
        await assertOpenScope(wallet, 'send');
        const ref = idempotencyRef(c);
        await reserveOp(
          c,
          await sendReservation(ctx, {
            wallet,
            to: body.to,
            asset: body.asset,
            amount: body.amountAtomic,
            kind: 'send',
            actor: actorOf(c),
            caller: c.get('caller').address,
            ...(ref ? { idempotencyRef: ref } : {}),
          }),
        );
      },
    }),
    async (c) => respondEntry(c, await runEntry(c)),
  );

  // --- 6. swap ------------------------------------------------------------------------------------------

  app.post(
    '/v1/wallets/:address/swap',
    validate('param', addressParam),
    validate('json', swapBody),
    ...paid({
      price: prices.swap,
      settle: 'first',
      target: 'wallet',
      roles: ['owner', 'agent'],
      precheck: async (c) => {
        const wallet = c.get('wallet');
        const body = valid(c, 'json', swapBody);
        await assertOpenScope(wallet, 'swap');
        const ref = idempotencyRef(c);
        await reserveOp(
          c,
          await swapReservation(ctx, {
            wallet,
            from: body.from,
            amount: body.amountAtomic,
            maxSlippageBps: body.maxSlippageBps,
            ...(body.deadlineSeconds ? { deadlineSeconds: body.deadlineSeconds } : {}),
            actor: actorOf(c),
            caller: c.get('caller').address,
            ...(ref ? { idempotencyRef: ref } : {}),
          }),
        );
      },
    }),
    async (c) => {
      const entry = await runEntry(c);
      const view = await swapView(ctx, entry);
      if (entry.status === 'failed') {
        throw new AppError(
          /slippage|price moved|reverted/i.test(entry.error ?? '') ? 'slippage_exceeded' : 'transaction_failed',
          `the swap did not happen: ${entry.error}`,
          422,
          { details: { entry: view } },
        );
      }
      return c.json(view, entry.status === 'confirmed' ? 200 : 202);
    },
  );

  // --- 7. history ---------------------------------------------------------------------------------------

  app.get(
    '/v1/wallets/:address/history',
    validate('param', addressParam),
    validate('query', paginationQuery),
    ...paid({ price: prices.history, settle: 'after-success', target: 'wallet', roles: ['owner', 'agent'] }),
    async (c) => {
      const query = valid(c, 'query', paginationQuery);
      // Catch up on incoming transfers first, so a transfer that just landed is there.
      await indexIncoming(ctx, 5).catch((err) => ctx.log.warn({ err }, 'incoming transfer index pass failed'));
      return c.json(await history(ctx, c.get('wallet').address, query));
    },
  );

  // --- 8–11. funding requests ---------------------------------------------------------------------------

  app.post(
    '/v1/wallets/:address/fund-request',
    validate('param', addressParam),
    validate('json', fundRequestBody),
    ...paid({
      price: prices.fundRequest,
      settle: 'first',
      target: 'wallet',
      roles: ['owner', 'agent'],
      precheck: async (c) => {
        const wallet = c.get('wallet');
        if (wallet.status !== 'active') throw new AppError('wallet_deactivated', 'this wallet was deactivated', 409);
        if (!wallet.owner) {
          throw new AppError(
            'no_owner',
            'this wallet has no owner to ask yet (claim it first with X-Claim-Token)',
            409,
          );
        }
      },
    }),
    async (c) => {
      const body = valid(c, 'json', fundRequestBody);
      const row = await createFundRequest(ctx, c.get('wallet'), {
        amount: body.amount,
        reason: body.reason,
        requestedBy: c.get('access').role,
      });
      return c.json(fundRequestView(ctx, row), 201);
    },
  );

  app.get(
    '/v1/wallets/:address/fund-requests',
    validate('param', addressParam),
    validate('query', fundRequestsQuery),
    ...paid({ price: prices.fundRequests, settle: 'after-success', target: 'wallet', roles: ['owner', 'agent'] }),
    async (c) => {
      const { limit, cursor, status } = valid(c, 'query', fundRequestsQuery);
      return c.json(
        await listFundRequests(ctx, c.get('wallet').address, {
          limit,
          ...(cursor ? { cursor } : {}),
          ...(status ? { status } : {}),
        }),
      );
    },
  );

  app.post(
    '/v1/fund-requests/:id/approve',
    validate('param', fundRequestParam),
    validate('json', approveBody),
    ...paid({
      price: prices.approve,
      settle: 'first',
      target: 'fundRequest',
      roles: ['owner'],
      precheck: async (c) => {
        const request = c.get('fundRequest');
        const body = valid(c, 'json', approveBody);
        const caller = c.get('caller');
        if (request.owner !== caller.address) {
          throw forbidden('only the owner the request was made to may approve it');
        }
        await assertOpen(ctx, ctx.db, request);
        let auth: StoredAuthorization | undefined;
        let ownerWallet: WalletRow | undefined;
        if (body.authorization) {
          auth = body.authorization as StoredAuthorization;
          await checkOwnerAuthorization(ctx, request, auth);
        } else if (caller.agentOf && caller.agentOf.address === request.owner) {
          ownerWallet = caller.agentOf;
          await assertOpenScope(ownerWallet, 'send');
        } else {
          throw invalidRequest(
            'authorization is required: an EIP-3009 transferWithAuthorization signed by the owner (see the request’s approve field)',
            'body.authorization',
          );
        }
        const ref = idempotencyRef(c);
        await reserveOp(
          c,
          await approvalReservation(ctx, {
            request,
            wallet: c.get('wallet'),
            ...(auth ? { auth } : {}),
            ...(ownerWallet ? { ownerWallet } : {}),
            actor: 'owner',
            caller: caller.address,
            ...(ref ? { idempotencyRef: ref } : {}),
          }),
        );
      },
    }),
    async (c) => {
      const entry = await runEntry(c);
      if (entry.status === 'failed') {
        throw transactionFailed(entry.error ?? 'failed', { entry: entryView(entry), request: c.get('fundRequest').id });
      }
      const request = await settleApproval(ctx, c.get('fundRequest'), entry);
      return c.json(fundRequestView(ctx, request), entry.status === 'confirmed' ? 200 : 202);
    },
  );

  app.post(
    '/v1/fund-requests/:id/deny',
    validate('param', fundRequestParam),
    validate('json', denyBody),
    ...paid({
      price: prices.deny,
      settle: 'after-success',
      target: 'fundRequest',
      roles: ['owner'],
      precheck: async (c) => {
        if (c.get('fundRequest').owner !== c.get('caller').address) {
          throw forbidden('only the owner the request was made to may deny it');
        }
      },
    }),
    async (c) => {
      const body = valid(c, 'json', denyBody);
      const row = await denyFundRequest(ctx, c.get('fundRequest'), body.reason ?? null);
      return c.json(fundRequestView(ctx, row));
    },
  );

  // --- 12–13. policy ------------------------------------------------------------------------------------

  const policyView = async (wallet: WalletRow, policy: Policy) => {
    const now = ctx.clock.now();
    const usage = await store.usage(ctx.db, wallet.address, utcDay(now), {});
    const tomorrow = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
    return {
      policy: policyToJson(policy),
      usage: {
        day: utcDay(now),
        resetsAt: tomorrow.toISOString(),
        spentToday: formatUsdc(usage.today),
        remainingToday:
          policy.maxPerDay === null
            ? null
            : formatUsdc(policy.maxPerDay > usage.today ? policy.maxPerDay - usage.today : 0n),
      },
    };
  };

  app.get(
    '/v1/wallets/:address/policy',
    validate('param', addressParam),
    ...paid({ price: prices.policyGet, settle: 'after-success', target: 'wallet', roles: ['owner', 'agent'] }),
    async (c) => c.json(await policyView(c.get('wallet'), policyFromJson(c.get('wallet').policy))),
  );

  app.put(
    '/v1/wallets/:address/policy',
    validate('param', addressParam),
    validate('json', policyInputSchema),
    ...paid({ price: prices.policyPut, settle: 'after-success', target: 'wallet', roles: ['owner'] }),
    async (c) => {
      const policy = (c.req.valid as (t: string) => Policy)('json');
      await store.setPolicy(ctx.db, c.get('wallet').address, policyToJson(policy), ctx.clock.now());
      return c.json(await policyView(c.get('wallet'), policy));
    },
  );

  // --- 14–15. pause / resume ----------------------------------------------------------------------------

  app.post(
    '/v1/wallets/:address/pause',
    validate('param', addressParam),
    validate('json', pauseBody),
    ...paid({ price: prices.pause, settle: 'after-success', target: 'wallet', roles: ['owner'] }),
    async (c) => {
      const body = valid(c, 'json', pauseBody);
      await pauseWallet(ctx, c.get('wallet'), body.scope, body.reason);
      return c.json(await safetyState(ctx, c.get('wallet').address));
    },
  );

  app.post(
    '/v1/wallets/:address/resume',
    validate('param', addressParam),
    validate('json', resumeBody),
    ...paid({ price: prices.resume, settle: 'after-success', target: 'wallet', roles: ['owner'] }),
    async (c) => {
      const body = valid(c, 'json', resumeBody);
      await resumeWallet(ctx, c.get('wallet'), body.scope);
      return c.json(await safetyState(ctx, c.get('wallet').address));
    },
  );

  // --- + pay on behalf ----------------------------------------------------------------------------------

  app.post(
    '/v1/wallets/:address/pay',
    validate('param', addressParam),
    validate('json', payBody),
    ...paid({
      price: prices.pay,
      settle: 'first',
      target: 'wallet',
      roles: ['owner', 'agent'],
      precheck: async (c) => {
        const wallet = c.get('wallet');
        const body = valid(c, 'json', payBody);
        checkPayHeaders(body.headers);
        const url = await checkPayUrl(checkDestination, body.url);
        await assertOpenScope(wallet, 'pay');
        // A host the policy denies is refused before anything is charged.
        const decision = evaluatePolicy(
          policyFromJson(wallet.policy),
          { kind: 'pay', value: 0n, usdcOut: 0n, service: { host: url.hostname } },
          { today: 0n },
        );
        if (!decision.allowed && decision.rule === 'deny') throw policyViolation(decision);
      },
    }),
    async (c) => {
      const body = valid(c, 'json', payBody);
      const ref = idempotencyRef(c);
      const result = await payOnBehalf(ctx, {
        wallet: c.get('wallet'),
        actor: actorOf(c),
        caller: c.get('caller').address,
        ...(ref ? { idempotencyRef: ref } : {}),
        request: {
          url: body.url,
          method: body.method,
          headers: body.headers,
          ...(body.body !== undefined ? { body: body.body } : {}),
          ...(body.maxAmount !== undefined ? { maxAmount: body.maxAmount } : {}),
        },
      });
      return c.json(result);
    },
  );

  // --- owner extras: notifications, delivery log, agent token -------------------------------------------

  app.get(
    '/v1/wallets/:address/notifications',
    validate('param', addressParam),
    ...paid({ price: prices.notifications, settle: 'after-success', target: 'wallet', roles: ['owner'] }),
    async (c) => c.json(await notificationView(ctx, c.get('wallet').address)),
  );

  app.put(
    '/v1/wallets/:address/notifications',
    validate('param', addressParam),
    validate('json', notificationsBody),
    ...paid({ price: prices.notifications, settle: 'after-success', target: 'wallet', roles: ['owner'] }),
    async (c) => {
      const body = valid(c, 'json', notificationsBody);
      return c.json(
        await setNotifications(ctx, c.get('wallet'), {
          ...(body.webhookUrl !== undefined ? { webhookUrl: body.webhookUrl } : {}),
          ...(body.webhookSecret !== undefined ? { webhookSecret: body.webhookSecret } : {}),
          ...(body.events !== undefined ? { events: body.events } : {}),
          ...(body.email !== undefined ? { email: body.email } : {}),
          checkUrl: checkDestination,
        }),
      );
    },
  );

  app.get(
    '/v1/wallets/:address/deliveries',
    validate('param', addressParam),
    validate('query', deliveriesQuery),
    ...paid({ price: prices.deliveries, settle: 'after-success', target: 'wallet', roles: ['owner'] }),
    async (c) => {
      const { channel, limit, cursor } = valid(c, 'query', deliveriesQuery);
      const wallet = c.get('wallet').address;
      if (channel === 'webhook') {
        const page = await ctx.outbox.deliveries({ owner: wallet }, { limit, ...(cursor ? { cursor } : {}) });
        return c.json({
          channel,
          items: page.items.map((d) => ({
            ...d,
            createdAt: d.createdAt.toISOString(),
            finishedAt: d.finishedAt?.toISOString() ?? null,
            nextAttemptAt: d.nextAttemptAt?.toISOString() ?? null,
            log: d.log.map((a) => ({ ...a, startedAt: a.startedAt.toISOString() })),
          })),
          nextCursor: page.nextCursor,
        });
      }
      return c.json({ channel, ...(await emailLog(ctx, wallet, { limit, ...(cursor ? { cursor } : {}) })) });
    },
  );

  app.post(
    '/v1/wallets/:address/agent-token',
    validate('param', addressParam),
    ...paid({
      price: prices.rotateAgentToken,
      settle: 'after-success',
      target: 'wallet',
      roles: ['owner'],
      precheck: async (c) => {
        if (c.get('wallet').status !== 'active')
          throw new AppError('wallet_deactivated', 'this wallet was deactivated', 409);
      },
    }),
    async (c) => {
      c.header('cache-control', 'no-store');
      return c.json({ agentToken: await rotateAgentToken(ctx, c.get('wallet')) });
    },
  );

  // --- operator -----------------------------------------------------------------------------------------

  const operator: MiddlewareHandler = async (c, next) => {
    const configured = ctx.settings.operatorToken;
    if (!configured) throw forbidden('operator routes are disabled: WALLET_OPERATOR_TOKEN is not set');
    const given = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1] ?? '';
    const a = createHash('sha256').update(given).digest();
    const b = createHash('sha256').update(configured).digest();
    if (!timingSafeEqual(a, b)) {
      throw new AppError('unauthorized', 'operator token required', 401, { field: 'header.authorization' });
    }
    await next();
  };

  app.get('/v1/operator/kill-switch', operator, async (c) => c.json(await killSwitch(ctx)));
  app.put('/v1/operator/kill-switch', operator, validate('json', killSwitchBody), async (c) => {
    const body = valid(c as C, 'json', killSwitchBody);
    if (!body.engaged && ctx.settings.killSwitchFromEnv) {
      throw new AppError(
        'conflict',
        'WALLET_KILL_SWITCH=true holds the switch on; change the environment to release it',
        409,
      );
    }
    return c.json(await setKillSwitch(ctx, body.engaged, body.reason ?? null));
  });

  return { app, openApi, llms };
}

/** The client's address: the socket's, or the first X-Forwarded-For hop when behind a trusted proxy. */
function clientIp(c: C, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = c.req.header('x-forwarded-for')?.split(',')[0]?.trim();
    if (forwarded) return forwarded;
  }
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
