import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parsePublicKey } from '../src/ssh-keys.js';

const dir = mkdtempSync(join(tmpdir(), 'spawn-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let generated = 0;
function generate(type: string, bits?: number): string {
  generated += 1;
  const file = join(dir, `${type}-${bits ?? 0}-${generated}`);
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...(bits ? ['-b', String(bits)] : []),
    '-N',
    '',
    '-C',
    'me@host',
    '-f',
    file,
  ]);
  return readFileSync(`${file}.pub`, 'utf8');
}

const fingerprint = (hash: 'sha256' | 'md5', key: string) => {
  const file = join(dir, 'fp.pub');
  execFileSync('sh', ['-c', `cat > ${file}`], { input: key });
  return execFileSync('ssh-keygen', ['-l', '-E', hash, '-f', file], { encoding: 'utf8' }).split(' ')[1];
};

describe('OpenSSH public keys', () => {
  it.each([
    ['ed25519', undefined, 256],
    ['rsa', 2048, 2048],
    ['rsa', 3072, 3072],
    ['ecdsa', 256, 256],
    ['ecdsa', 384, 384],
    ['ecdsa', 521, 521],
  ])('accepts %s %s with the fingerprints ssh-keygen prints', (type, bits, expectedBits) => {
    const text = generate(type, bits);
    const parsed = parsePublicKey(text);
    expect(parsed.bits).toBe(expectedBits);
    expect(parsed.comment).toBe('me@host');
    expect(parsed.normalized).toBe(text.trim().split(' ').slice(0, 2).join(' '));
    expect(parsed.sha256).toBe(fingerprint('sha256', text));
    expect(`MD5:${parsed.md5}`).toBe(fingerprint('md5', text));
  });

  it('refuses RSA keys under 2048 bits and DSA keys', () => {
    expect(() => parsePublicKey(generate('rsa', 1024))).toThrow(/at least 2048 bits \(this one has 1024\)/);
    expect(() => parsePublicKey('ssh-dss AAAAB3NzaC1kc3MAAACBAP1 x')).toThrow(/DSA/);
  });

  it('refuses what is not a key', () => {
    const good = generate('ed25519').trim();
    const [type, data] = good.split(' ') as [string, string];
    const blob = Buffer.from(data, 'base64');
    const cases: [string, RegExp][] = [
      ['', /expected/],
      ['ssh-ed25519', /expected/],
      ['hello world', /unsupported key type/],
      [`${type} not*base64`, /not base64/],
      [`ssh-rsa ${data}`, /is a ssh-ed25519 key, not ssh-rsa/],
      [`${type} ${blob.subarray(0, blob.length - 3).toString('base64')}`, /ends|32 bytes|base64/],
      [`${type} ${Buffer.concat([blob, Buffer.from([0])]).toString('base64')}`, /unexpected bytes/],
      [`${good}\n${good}`, /one key/],
      ['-----BEGIN OPENSSH PRIVATE KEY-----', /unsupported key type/],
    ];
    for (const [input, message] of cases) expect(() => parsePublicKey(input), input).toThrow(message);
  });
});
