import { describe, expect, it } from 'vitest';
import {
  EMPTY_POLICY,
  evaluatePolicy,
  matchesEntry,
  type Operation,
  type Policy,
  policyFromJson,
  policyToJson,
} from '../src/policy.js';

const ALICE = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const BOB = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
const usd = (n: number) => BigInt(Math.round(n * 1_000_000));

const send = (value: number, recipient = ALICE): Operation => ({
  kind: 'send',
  value: usd(value),
  usdcOut: usd(value),
  recipient,
});
const pay = (value: number, host: string, payTo = BOB): Operation => ({
  kind: 'pay',
  value: usd(value),
  usdcOut: usd(value),
  service: { host, payTo },
});

const policy = (json: Record<string, unknown>): Policy => policyFromJson(json);

describe('evaluatePolicy', () => {
  it('allows anything under an empty policy', () => {
    expect(evaluatePolicy(EMPTY_POLICY, send(1_000_000), { today: usd(1_000_000) })).toEqual({
      allowed: true,
      remaining: null,
    });
  });

  it('maxPerTx and maxPerDay, naming the rule and the remaining allowance', () => {
    const p = policy({ maxPerTx: '5', maxPerDay: '20' });
    expect(evaluatePolicy(p, send(5), { today: 0n })).toEqual({ allowed: true, remaining: usd(5) });
    expect(evaluatePolicy(p, send(5.000001), { today: 0n })).toMatchObject({
      allowed: false,
      rule: 'maxPerTx',
      limit: usd(5),
      remaining: usd(5),
    });
    expect(evaluatePolicy(p, send(4), { today: usd(17) })).toMatchObject({
      allowed: false,
      rule: 'maxPerDay',
      limit: usd(20),
      remaining: usd(3),
    });
    expect(evaluatePolicy(p, send(3), { today: usd(17) })).toMatchObject({ allowed: true, remaining: usd(3) });
    // Fees are not single transactions but count toward the day.
    expect(evaluatePolicy(p, { kind: 'fee', value: usd(6), usdcOut: usd(6) }, { today: 0n }).allowed).toBe(true);
    expect(
      evaluatePolicy(p, { kind: 'fee', value: usd(0.001), usdcOut: usd(0.001) }, { today: usd(20) }),
    ).toMatchObject({ allowed: false, rule: 'maxPerDay' });
  });

  it('per-recipient caps: a default for everyone, overridden per address', () => {
    const p = policy({ maxPerRecipientPerDay: '2', recipientCaps: { [BOB]: '10' } });
    expect(evaluatePolicy(p, send(1.5, ALICE), { today: 0n, recipientToday: usd(1) })).toMatchObject({
      allowed: false,
      rule: 'maxPerRecipientPerDay',
      remaining: usd(1),
    });
    expect(evaluatePolicy(p, send(8, BOB), { today: 0n, recipientToday: usd(1) }).allowed).toBe(true);
    expect(evaluatePolicy(p, send(8, BOB), { today: 0n, recipientToday: usd(3) })).toMatchObject({
      rule: 'recipientCaps',
      limit: usd(10),
    });
  });

  it('per-service caps by host (default and named) and by payTo address', () => {
    const p = policy({ maxPerServicePerDay: '1', serviceCaps: { 'api.big.example': '50', [BOB]: '3' } });
    expect(evaluatePolicy(p, pay(0.5, 'small.example', ALICE), { today: 0n, hostToday: usd(0.6) })).toMatchObject({
      rule: 'maxPerServicePerDay',
    });
    expect(evaluatePolicy(p, pay(10, 'api.big.example', ALICE), { today: 0n, hostToday: 0n }).allowed).toBe(true);
    expect(
      evaluatePolicy(p, pay(2, 'api.big.example', BOB), { today: 0n, hostToday: 0n, payToToday: usd(2) }),
    ).toMatchObject({ rule: 'serviceCaps', limit: usd(3) });
    // Caps for services do not apply to sends, and recipient caps not to payments.
    expect(evaluatePolicy(p, send(100, BOB), { today: 0n }).allowed).toBe(true);
  });

  it('deny wins over allow; allow lists restrict sends by address and payments by host or payTo', () => {
    const p = policy({ allow: [ALICE, '*.trusted.example'], deny: ['evil.trusted.example'] });
    expect(evaluatePolicy(p, send(1, ALICE), { today: 0n }).allowed).toBe(true);
    expect(evaluatePolicy(p, send(1, BOB), { today: 0n })).toMatchObject({ allowed: false, rule: 'allow' });
    expect(evaluatePolicy(p, pay(1, 'api.trusted.example'), { today: 0n }).allowed).toBe(true);
    expect(evaluatePolicy(p, pay(1, 'trusted.example'), { today: 0n })).toMatchObject({ rule: 'allow' });
    expect(evaluatePolicy(p, pay(1, 'evil.trusted.example'), { today: 0n })).toMatchObject({ rule: 'deny' });
    expect(evaluatePolicy(p, pay(1, 'other.example', ALICE), { today: 0n }).allowed).toBe(true);
    // Swaps have no counterparty: lists do not apply.
    expect(evaluatePolicy(p, { kind: 'swap', value: usd(1), usdcOut: usd(1) }, { today: 0n }).allowed).toBe(true);
  });

  it('autoPauseBelow refuses what would leave too little USDC and asks to pause; ETH-only moves pass', () => {
    const p = policy({ autoPauseBelow: '10' });
    expect(evaluatePolicy(p, send(5), { today: 0n }, usd(15)).allowed).toBe(true);
    expect(evaluatePolicy(p, send(5.01), { today: 0n }, usd(15))).toMatchObject({
      allowed: false,
      rule: 'autoPauseBelow',
      pause: true,
      remaining: usd(5),
    });
    expect(
      evaluatePolicy(p, { kind: 'send', value: usd(100), usdcOut: 0n, recipient: ALICE }, { today: 0n }, usd(1)),
    ).toMatchObject({ allowed: true });
  });
});

describe('policy JSON', () => {
  it('round-trips, lower-casing keys and entries', () => {
    const p = policy({
      maxPerTx: '5.5',
      recipientCaps: { [BOB]: '1' },
      serviceCaps: { 'API.Example.com': '0.25' },
      allow: [ALICE],
      deny: ['*.Evil.example'],
    });
    expect(policyToJson(p)).toEqual({
      maxPerTx: '5.50',
      maxPerDay: null,
      maxPerRecipientPerDay: null,
      recipientCaps: { [BOB.toLowerCase()]: '1.00' },
      maxPerServicePerDay: null,
      serviceCaps: { 'api.example.com': '0.25' },
      allow: [ALICE.toLowerCase()],
      deny: ['*.evil.example'],
      autoPauseBelow: null,
    });
    expect(policyFromJson(policyToJson(p))).toEqual(p);
  });

  it('names the field at fault', () => {
    const fail = (json: unknown) => {
      try {
        policyFromJson(json);
      } catch (err) {
        return (err as { issues: { path: (string | number)[]; message: string }[] }).issues[0];
      }
      throw new Error('expected a failure');
    };
    expect(fail({ maxPerTx: 5 })?.path).toEqual(['maxPerTx']);
    expect(fail({ maxPerDay: '1.0000001' })?.message).toMatch(/decimal places/);
    expect(fail({ maxPerDay: '-1' })?.message).toMatch(/negative/);
    expect(fail({ recipientCaps: { [ALICE.replace('C8', 'c8')]: '1' } })?.path).toEqual([
      'recipientCaps',
      ALICE.replace('C8', 'c8'),
    ]);
    expect(fail({ allow: ['not a host!'] })?.path).toEqual(['allow', 0]);
    expect(fail({ surprise: true })?.message).toMatch(/surprise|Unrecognized/);
  });

  it('matches wildcard hosts on subdomains only', () => {
    expect(matchesEntry('*.example.com', 'a.example.com')).toBe(true);
    expect(matchesEntry('*.example.com', 'a.b.example.com')).toBe(true);
    expect(matchesEntry('*.example.com', 'example.com')).toBe(false);
    expect(matchesEntry('*.example.com', 'badexample.com')).toBe(false);
  });
});
