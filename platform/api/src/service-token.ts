import { randomBytes } from 'node:crypto';
import { type Clock, systemClock } from '@agentstack/core';
import { errors, jwtVerify, SignJWT } from 'jose';

const ISSUER = 'agentsquads-platform';
const AUDIENCE = 'agentsquads-platform-api';
const ALGORITHM = 'HS256';
/** No token lives longer than this, whatever the configured lifetime. */
export const MAX_SERVICE_TOKEN_SECONDS = 3600;

export interface ServiceTokenClaims {
  tenantId: string;
  /** Which component holds it (`runtime`, `channel:telegram`, `orchestrator`), for logs. */
  subject: string;
  expiresAt: Date;
}

/**
 * Short-lived signed tokens (JWT, HS256) that let other platform components act for one tenant:
 * `Authorization: Bearer <token>` on the routes that accept them. Minted in-process by components that
 * know the tenant (orchestrator, channels), or by a runtime exchanging its tenant API key
 * (`POST /api/service-tokens`).
 */
export class ServiceTokens {
  constructor(
    private readonly key: Uint8Array,
    private readonly ttlSeconds: number,
    private readonly clock: Clock = systemClock,
  ) {
    if (key.length < 32) throw new Error('service token key must be at least 32 bytes');
    if (ttlSeconds > MAX_SERVICE_TOKEN_SECONDS)
      throw new Error(`service tokens live at most ${MAX_SERVICE_TOKEN_SECONDS} s`);
  }

  async mint({
    tenantId,
    subject,
  }: {
    tenantId: string;
    subject: string;
  }): Promise<{ token: string; expiresAt: Date }> {
    const now = Math.floor(this.clock.now().getTime() / 1000);
    const exp = now + this.ttlSeconds;
    const token = await new SignJWT({ tid: tenantId })
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(subject)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .setJti(randomBytes(12).toString('base64url'))
      .sign(this.key);
    return { token, expiresAt: new Date(exp * 1000) };
  }

  /** The claims of a valid token, or undefined when it is malformed, forged, expired or too long-lived. */
  async verify(token: string): Promise<ServiceTokenClaims | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: [ALGORITHM],
        issuer: ISSUER,
        audience: AUDIENCE,
        currentDate: this.clock.now(),
        clockTolerance: 5,
        requiredClaims: ['exp', 'iat', 'sub'],
      });
      const { tid, exp, iat, sub } = payload as { tid?: unknown; exp: number; iat: number; sub: string };
      if (typeof tid !== 'string' || !/^ten_[0-9A-Za-z]{22}$/.test(tid)) return undefined;
      if (exp - iat > MAX_SERVICE_TOKEN_SECONDS) return undefined;
      return { tenantId: tid, subject: sub, expiresAt: new Date(exp * 1000) };
    } catch (err) {
      if (err instanceof errors.JOSEError) return undefined;
      throw err;
    }
  }
}
