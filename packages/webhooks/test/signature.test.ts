import { describe, expect, it } from 'vitest';
import { signPayload, verifySignature } from '../src/signature.js';

const secret = 'whsec_0123456789abcdef';
const body = '{"id":"evt_1","type":"fund_request.created"}';
const at = new Date('2026-03-01T12:00:00Z');
const t = Math.floor(at.getTime() / 1000);

describe('webhook signatures', () => {
  it('signs timestamp and body, and verifies the raw bytes', () => {
    const header = signPayload({ secret, body, timestamp: t });
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifySignature({ secret, header, body, now: at })).toEqual({ ok: true, timestamp: t });
  });

  it('refuses a changed body, a wrong secret, and a re-serialised body', () => {
    const header = signPayload({ secret, body, timestamp: t });
    expect(verifySignature({ secret, header, body: body.replace('created', 'approved'), now: at })).toEqual({
      ok: false,
      reason: 'mismatch',
    });
    expect(verifySignature({ secret: 'whsec_other_secret_value', header, body, now: at }).ok).toBe(false);
    const reserialised = JSON.stringify(JSON.parse(body), null, 1);
    expect(verifySignature({ secret, header, body: reserialised, now: at }).ok).toBe(false);
  });

  it('refuses a replay outside the tolerance window, and a timestamp moved to fit it', () => {
    const header = signPayload({ secret, body, timestamp: t });
    const later = new Date(at.getTime() + 301_000);
    expect(verifySignature({ secret, header, body, now: later })).toEqual({ ok: false, reason: 'expired' });
    expect(verifySignature({ secret, header, body, now: later, toleranceSeconds: 600 }).ok).toBe(true);
    const earlier = new Date(at.getTime() - 301_000);
    expect(verifySignature({ secret, header, body, now: earlier })).toEqual({ ok: false, reason: 'from_the_future' });
    // Moving t without re-signing breaks the HMAC.
    const moved = header.replace(`t=${t}`, `t=${t + 300}`);
    expect(verifySignature({ secret, header: moved, body, now: later })).toEqual({ ok: false, reason: 'mismatch' });
  });

  it('accepts any of several signatures or secrets (rotation) and rejects garbage', () => {
    const oldHeader = signPayload({ secret: 'whsec_old_secret_value!', body, timestamp: t });
    const newHeader = signPayload({ secret, body, timestamp: t });
    const both = `${newHeader},v1=${oldHeader.split('v1=')[1]}`;
    expect(verifySignature({ secret: 'whsec_old_secret_value!', header: both, body, now: at }).ok).toBe(true);
    expect(verifySignature({ secret: ['whsec_unrelated_1234', secret], header: newHeader, body, now: at }).ok).toBe(
      true,
    );
    for (const header of [undefined, '', 'garbage', `t=${t}`, 'v1=abc', `t=abc,v1=${'0'.repeat(64)}`]) {
      expect(verifySignature({ secret, header, body, now: at })).toEqual({ ok: false, reason: 'malformed' });
    }
  });
});
