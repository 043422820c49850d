import { type Address, getAddress, isAddress } from 'viem';
import { z } from 'zod';

/**
 * An EVM address in a request: 0x + 40 hex; mixed case must carry a valid EIP-55 checksum (a typo in a
 * checksummed address is caught, not sent). Normalised to the checksummed form.
 */
export const addressSchema = z
  .string({ message: 'expected an 0x address' })
  .refine((value) => /^0x[0-9a-fA-F]{40}$/.test(value), { message: 'expected 0x followed by 40 hex characters' })
  .refine((value) => isAddress(value, { strict: true }), { message: 'address checksum is wrong (EIP-55)' })
  .transform((value) => getAddress(value) as Address);
