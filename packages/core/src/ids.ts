import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Random base62 string; rejection sampling keeps every character uniformly likely. */
export function randomToken(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** A prefixed, random, URL-safe id: `newId('mbx')` → `mbx_3kT9…` (128+ bits of randomness). */
export function newId(prefix: string): string {
  if (!/^[a-z][a-z0-9]{1,11}$/.test(prefix)) throw new Error(`bad id prefix ${prefix}`);
  return `${prefix}_${randomToken(22)}`;
}

/** Checks that an id has the expected prefix and shape (for validating path parameters). */
export function isId(prefix: string, value: string): boolean {
  return new RegExp(`^${prefix}_[0-9A-Za-z]{22}$`).test(value);
}
