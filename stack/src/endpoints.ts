import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isProcessRunning } from '@agentstack/core';

/**
 * `<data dir>/endpoints.json`: what a running `start` brought up, for tools and tests to find. Written once
 * everything is healthy, removed on stop. Secrets never go in it (database URLs carry only the local dev
 * password of the embedded server).
 */
export interface Endpoints {
  startedAt: string;
  /** The `start` process; the stack is running while it is alive. */
  pid: number;
  dataDir: string;
  database?: { host: string; port: number; pid: number; urls: Record<string, string> };
  devnet?: {
    rpcUrl: string;
    chainId: number;
    usdc: string;
    pid: number;
    /** Uniswap V2 on the devnet (wallet.sh swaps through it). */
    uniswap?: { factory: string; router: string; weth: string; pair: string };
  };
  facilitator?: { url: string };
  services: Record<string, { url: string; pid: number; log: string; ports?: Record<string, number> }>;
}

export const endpointsPath = (dataDir: string) => join(dataDir, 'endpoints.json');

export async function writeEndpoints(dataDir: string, endpoints: Endpoints): Promise<void> {
  await writeFile(endpointsPath(dataDir), `${JSON.stringify(endpoints, null, 2)}\n`, { mode: 0o600 });
}

export async function readEndpoints(dataDir: string): Promise<Endpoints | undefined> {
  try {
    const endpoints = JSON.parse(await readFile(endpointsPath(dataDir), 'utf8')) as Endpoints;
    return isAlive(endpoints.pid) ? endpoints : undefined;
  } catch {
    return undefined;
  }
}

export async function removeEndpoints(dataDir: string): Promise<void> {
  await rm(endpointsPath(dataDir), { force: true });
}

export const isAlive = isProcessRunning;
