import { readFileSync } from 'node:fs';
import { parseUsdc } from '@agentstack/core';
import { z } from 'zod';

/**
 * The product's figures in one table (types, images, locations, deposits, burn and route prices), so an
 * operator can change them without code: `SPAWN_CATALOG_FILE` points to a JSON file whose entries replace
 * these (money as USDC decimal strings).
 */
export interface ServerType {
  slug: string;
  cores: number;
  memoryGb: number;
  diskGb: number;
  arch: 'x86' | 'arm';
  /** Hetzner Cloud server type name. */
  hetzner: string;
  /** Reserved from the caller's spawn balance at creation, atomic USDC. */
  deposit: bigint;
  /** Charged from the server's deposit once per UTC day, atomic USDC. */
  burnPerDay: bigint;
}

export interface Catalog {
  types: Record<string, ServerType>;
  images: string[];
  locations: string[];
  /** Route prices, atomic USDC. */
  prices: {
    createServer: bigint;
    listServers: bigint;
    getServer: bigint;
    deleteServer: bigint;
    powerAction: bigint;
    resize: bigint;
    rebuild: bigint;
    sshKey: bigint;
  };
  /** Below this many days of burn left, the owner is warned. */
  warnDays: number;
  /** Between the final warning and the automatic destruction. */
  graceHours: number;
}

const usdc = (s: string) => parseUsdc(s);

export const DEFAULT_CATALOG: Catalog = {
  types: {
    small: {
      slug: 'small',
      cores: 2,
      memoryGb: 4,
      diskGb: 40,
      arch: 'x86',
      hetzner: 'cx23',
      deposit: usdc('5.00'),
      burnPerDay: usdc('0.15'),
    },
    medium: {
      slug: 'medium',
      cores: 4,
      memoryGb: 8,
      diskGb: 80,
      arch: 'x86',
      hetzner: 'cx33',
      deposit: usdc('7.50'),
      burnPerDay: usdc('0.22'),
    },
    large: {
      slug: 'large',
      cores: 8,
      memoryGb: 16,
      diskGb: 160,
      arch: 'x86',
      hetzner: 'cx43',
      deposit: usdc('13.00'),
      burnPerDay: usdc('0.40'),
    },
    'arm-small': {
      slug: 'arm-small',
      cores: 2,
      memoryGb: 4,
      diskGb: 40,
      arch: 'arm',
      hetzner: 'cax11',
      deposit: usdc('5.25'),
      burnPerDay: usdc('0.16'),
    },
  },
  images: ['ubuntu-24.04', 'ubuntu-22.04', 'debian-12', 'fedora-41'],
  locations: ['nbg1', 'fsn1', 'hel1', 'ash', 'hil'],
  prices: {
    createServer: usdc('0.01'),
    listServers: usdc('0.001'),
    getServer: usdc('0.001'),
    deleteServer: usdc('0.005'),
    powerAction: usdc('0.002'),
    resize: usdc('0.01'),
    rebuild: usdc('0.005'),
    sshKey: usdc('0.001'),
  },
  warnDays: 3,
  graceHours: 24,
};

const money = z.string().transform((value, ctx) => {
  try {
    return parseUsdc(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const overrideSchema = z
  .object({
    types: z.record(
      z.string().regex(/^[a-z0-9-]{1,32}$/),
      z.object({
        cores: z.number().int().positive(),
        memoryGb: z.number().positive(),
        diskGb: z.number().int().positive(),
        arch: z.enum(['x86', 'arm']),
        hetzner: z.string().min(1),
        deposit: money,
        burnPerDay: money,
      }),
    ),
    images: z.array(z.string().min(1)).min(1),
    locations: z.array(z.string().min(1)).min(1),
    prices: z
      .object({
        createServer: money,
        listServers: money,
        getServer: money,
        deleteServer: money,
        powerAction: money,
        resize: money,
        rebuild: money,
        sshKey: money,
      })
      .partial(),
    warnDays: z.number().int().min(1).max(60),
    graceHours: z
      .number()
      .int()
      .min(1)
      .max(24 * 14),
  })
  .partial()
  .strict();

/** The default catalog, with the operator's file (if any) laid over it. */
export function loadCatalog(file?: string): Catalog {
  if (!file) return DEFAULT_CATALOG;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`SPAWN_CATALOG_FILE: cannot read ${file}: ${(err as Error).message}`);
  }
  const parsed = overrideSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`SPAWN_CATALOG_FILE: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  const o = parsed.data;
  const types = o.types
    ? Object.fromEntries(Object.entries(o.types).map(([slug, t]) => [slug, { slug, ...t }]))
    : DEFAULT_CATALOG.types;
  for (const type of Object.values(types)) {
    if (type.burnPerDay <= 0n) throw new Error(`SPAWN_CATALOG_FILE: types.${type.slug}.burnPerDay must be positive`);
  }
  return {
    types,
    images: o.images ?? DEFAULT_CATALOG.images,
    locations: o.locations ?? DEFAULT_CATALOG.locations,
    prices: { ...DEFAULT_CATALOG.prices, ...o.prices },
    warnDays: o.warnDays ?? DEFAULT_CATALOG.warnDays,
    graceHours: o.graceHours ?? DEFAULT_CATALOG.graceHours,
  };
}
