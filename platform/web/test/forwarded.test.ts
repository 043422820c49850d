import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { clientAddress, setForwardedHeaders, trustedProxies } from '../scripts/forwarded.mjs';

describe('X-Forwarded-For set by the production server', () => {
  const none = trustedProxies(undefined);
  const lb = trustedProxies('10.0.0.5, ::ffff:10.0.0.6');

  it('ignores what a client made up, taking the connection address', () => {
    expect(clientAddress('203.0.113.7', '1.2.3.4', none)).toBe('203.0.113.7');
    expect(clientAddress('::ffff:203.0.113.7', undefined, none)).toBe('203.0.113.7');
  });

  it('believes a trusted proxy for the hops it added, not the ones a client sent it', () => {
    expect(clientAddress('10.0.0.5', '1.2.3.4, 198.51.100.9', lb)).toBe('198.51.100.9');
    expect(clientAddress('10.0.0.5', '198.51.100.9, 10.0.0.6', lb)).toBe('198.51.100.9');
    expect(clientAddress('10.0.0.5', 'garbage', lb)).toBe('10.0.0.5');
  });

  it('takes CIDR ranges (a compose network) and refuses nonsense', () => {
    const subnet = trustedProxies('172.28.0.0/24, fd00::/8');
    expect(clientAddress('172.28.0.1', '198.51.100.9', subnet)).toBe('198.51.100.9');
    expect(clientAddress('fd00::1', '198.51.100.9', subnet)).toBe('198.51.100.9');
    expect(clientAddress('172.29.0.1', '198.51.100.9', subnet)).toBe('172.29.0.1');
    expect(() => trustedProxies('example.com')).toThrow('WEB_TRUSTED_PROXIES');
  });

  it('rewrites the request headers, dropping forwarded host and scheme from untrusted peers', () => {
    const req = {
      socket: { remoteAddress: '203.0.113.7' },
      headers: { 'x-forwarded-for': '1.2.3.4', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    } as unknown as IncomingMessage;
    setForwardedHeaders(req, none);
    expect(req.headers).toEqual({ 'x-forwarded-for': '203.0.113.7' });
  });
});
