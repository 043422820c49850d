import { createHash } from 'node:crypto';

/**
 * OpenSSH public keys (`type base64 [comment]`), checked the way sshd would read them: the base64 blob is
 * decoded and its wire format parsed field by field (the type inside must match the one outside, key
 * material has the right length, RSA has at least 2048 bits, nothing trails). DSA is refused (OpenSSH
 * dropped it).
 */
export interface ParsedPublicKey {
  type: string;
  /** `type base64` without the comment: what goes into authorized_keys and to the provider. */
  normalized: string;
  comment: string;
  /** `SHA256:…` as `ssh-keygen -lf` prints it. */
  sha256: string;
  /** MD5 colon-hex, as Hetzner reports fingerprints. */
  md5: string;
  bits: number;
}

export class InvalidPublicKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidPublicKeyError';
  }
}

const ECDSA: Record<string, { curve: string; pointBytes: number; bits: number }> = {
  'ecdsa-sha2-nistp256': { curve: 'nistp256', pointBytes: 65, bits: 256 },
  'ecdsa-sha2-nistp384': { curve: 'nistp384', pointBytes: 97, bits: 384 },
  'ecdsa-sha2-nistp521': { curve: 'nistp521', pointBytes: 133, bits: 521 },
};
const SUPPORTED = [
  'ssh-ed25519',
  'ssh-rsa',
  ...Object.keys(ECDSA),
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
];

class Reader {
  private offset = 0;
  constructor(private readonly buffer: Buffer) {}
  string(what: string): Buffer {
    if (this.offset + 4 > this.buffer.length) throw new InvalidPublicKeyError(`key data ends before its ${what}`);
    const length = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    if (length > this.buffer.length - this.offset) throw new InvalidPublicKeyError(`key data ends inside its ${what}`);
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }
  done(): boolean {
    return this.offset === this.buffer.length;
  }
}

export function parsePublicKey(input: string): ParsedPublicKey {
  const text = input.trim();
  if (text.includes('\n') || text.includes('\r')) throw new InvalidPublicKeyError('one key per request, on one line');
  if (text.length > 16_384) throw new InvalidPublicKeyError('key is too long');
  const [type, data, ...rest] = text.split(/\s+/);
  if (!type || !data)
    throw new InvalidPublicKeyError('expected "<type> <base64 key> [comment]", e.g. "ssh-ed25519 AAAA… me@host"');
  if (type === 'ssh-dss') throw new InvalidPublicKeyError('DSA keys are no longer accepted by OpenSSH; use ed25519');
  if (!SUPPORTED.includes(type)) {
    throw new InvalidPublicKeyError(
      `unsupported key type ${JSON.stringify(type.slice(0, 40))}; use one of ${SUPPORTED.join(', ')}`,
    );
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(data) || data.length % 4 !== 0)
    throw new InvalidPublicKeyError('key data is not base64');
  const blob = Buffer.from(data, 'base64');
  const reader = new Reader(blob);
  const inner = reader.string('type').toString('latin1');
  if (inner !== type) throw new InvalidPublicKeyError(`key data is a ${inner.slice(0, 40)} key, not ${type}`);
  let bits: number;
  if (type === 'ssh-ed25519' || type === 'sk-ssh-ed25519@openssh.com') {
    if (reader.string('public key').length !== 32)
      throw new InvalidPublicKeyError('ed25519 public key must be 32 bytes');
    bits = 256;
  } else if (type === 'ssh-rsa') {
    const exponent = reader.string('exponent');
    const modulus = reader.string('modulus');
    if (exponent.length === 0 || exponent.length > 8) throw new InvalidPublicKeyError('RSA exponent is malformed');
    const significant = modulus[0] === 0 ? modulus.subarray(1) : modulus;
    bits = significant.length * 8 - Math.clz32(significant[0] ?? 0) + 24;
    if (bits < 2048) throw new InvalidPublicKeyError(`RSA keys must have at least 2048 bits (this one has ${bits})`);
    if (bits > 16_384) throw new InvalidPublicKeyError('RSA key is larger than 16384 bits');
  } else {
    const ecdsa = ECDSA[type.replace(/^sk-/, '').replace(/@openssh\.com$/, '')];
    if (!ecdsa) throw new InvalidPublicKeyError(`unsupported key type ${type}`);
    const curve = reader.string('curve').toString('latin1');
    if (curve !== ecdsa.curve) throw new InvalidPublicKeyError(`curve ${curve.slice(0, 20)} does not match ${type}`);
    const point = reader.string('point');
    if (point.length !== ecdsa.pointBytes || point[0] !== 0x04)
      throw new InvalidPublicKeyError('EC point is malformed');
    bits = ecdsa.bits;
  }
  if (type.startsWith('sk-')) reader.string('application');
  if (!reader.done()) throw new InvalidPublicKeyError('unexpected bytes after the key');
  const comment = rest.join(' ').slice(0, 200);
  return {
    type,
    normalized: `${type} ${data}`,
    comment,
    sha256: `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`,
    md5: createHash('md5')
      .update(blob)
      .digest('hex')
      .replace(/(..)(?!$)/g, '$1:'),
    bits,
  };
}
