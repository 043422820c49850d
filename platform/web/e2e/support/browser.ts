import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The flags CI runs Debian's Chromium with (see ../shared/DESIGN.md). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Debian Chromium with a fresh user-data-dir (removed on close). */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  }
  const userDataDir = await mkdtemp(join(tmpdir(), 'web-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 800 },
    timeout: 120_000,
  });
  context.setDefaultTimeout(30_000);
  context.setDefaultNavigationTimeout(60_000);
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

const here = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = join(here, '..', 'artifacts');
export const WALKTHROUGH = join(here, '..', '..', 'public', 'walkthrough');

/** Saves a screenshot into e2e/artifacts/ (gitignored) for a person to look at. */
export async function shoot(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: options.fullPage ?? false });
  return path;
}

export interface WalkthroughShot {
  file: string;
  title: string;
  caption: string;
}

/**
 * The landing page's walkthrough: real screenshots of the running product, written into public/walkthrough/
 * when missing or when UPDATE_WALKTHROUGH=1 (they are committed; a normal run leaves the tree clean).
 */
export async function walkthroughShot(page: Page, shot: WalkthroughShot, collected: WalkthroughShot[]) {
  collected.push(shot);
  const path = join(WALKTHROUGH, shot.file);
  if (existsSync(path) && process.env.UPDATE_WALKTHROUGH !== '1') return;
  await mkdir(WALKTHROUGH, { recursive: true });
  await page.screenshot({ path });
}

export async function writeWalkthroughIndex(shots: WalkthroughShot[]) {
  const path = join(WALKTHROUGH, 'walkthrough.json');
  if (existsSync(path) && process.env.UPDATE_WALKTHROUGH !== '1') return;
  if (shots.length === 0) return;
  await mkdir(WALKTHROUGH, { recursive: true });
  await writeFile(path, `${JSON.stringify(shots, null, 2)}\n`);
}
