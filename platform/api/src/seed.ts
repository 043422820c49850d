import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomToken } from '@agentstack/core';
import { seedModels } from './models.js';
import type { Platform } from './platform.js';

export interface DevAdmin {
  email: string;
  password: string;
  file: string;
}

export const devAdminFile = (dataDir: string) => join(dataDir, 'dev-admin.json');

/**
 * Local development only: an admin account whose password is generated once and kept in
 * `<data dir>/dev-admin.json` (mode 0600), printed by `start`. Never in production.
 */
export async function ensureDevAdmin(platform: Platform): Promise<DevAdmin | undefined> {
  const { config, store, auth } = platform;
  if (config.production) return undefined;
  const file = devAdminFile(config.dataDir);
  const saved = await readFile(file, 'utf8')
    .then((text) => JSON.parse(text) as { email: string; password: string })
    .catch(() => undefined);
  const existing = await store.findUserByEmail(config.DEV_ADMIN_EMAIL);
  if (existing) {
    if (!existing.role.split(',').includes('admin')) await store.setUserRole(existing.id, 'admin');
    return saved && saved.email === existing.email ? { ...saved, file } : undefined;
  }
  const password = randomToken(20);
  const { user } = await auth.api.signUpEmail({
    body: { email: config.DEV_ADMIN_EMAIL, password, name: 'Dev admin' },
  });
  await store.setUserRole(user.id, 'admin');
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, `${JSON.stringify({ email: config.DEV_ADMIN_EMAIL, password }, null, 2)}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  // `start` prints every service's dev-credentials.txt.
  await writeFile(
    join(config.dataDir, 'dev-credentials.txt'),
    `AgentSquads dev admin (local development only): ${config.DEV_ADMIN_EMAIL}  password ${password}\n`,
    { mode: 0o600 },
  );
  return { email: config.DEV_ADMIN_EMAIL, password, file };
}

/** `pnpm db:seed`: the models price list, and the dev admin outside production. */
export async function seed(platform: Platform): Promise<{ models: string[]; devAdmin: DevAdmin | undefined }> {
  const models = await seedModels(platform.store);
  const devAdmin = await ensureDevAdmin(platform);
  return { models, devAdmin };
}
