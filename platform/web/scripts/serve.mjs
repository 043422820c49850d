#!/usr/bin/env node
// How `start` runs the web app: the Next.js production server, built first when there is no build or the
// sources changed since the last one (a hash of them is kept next to the build). A second start with
// unchanged sources starts in a second or two; after an edit it rebuilds once (20–60 s on a small machine).
// It is `next start` plus one thing: X-Forwarded-For is set from the connection (see forwarded.mjs).
//   node scripts/serve.mjs [--port 3000] [--host 127.0.0.1]
//   node scripts/serve.mjs --build-only      (build if needed and exit: an image build step)
//   WEB_MODE=dev → `next dev` instead (no build; pages compile on first request).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setForwardedHeaders, trustedProxies } from './forwarded.mjs';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.WEB_PORT ?? '3000' },
    host: { type: 'string', default: process.env.WEB_HOST ?? '127.0.0.1' },
    'build-only': { type: 'boolean', default: false },
  },
});
const next = join(dir, 'node_modules', 'next', 'dist', 'bin', 'next');
const mode = process.env.WEB_MODE ?? 'production';
const distDir = join(dir, '.next');
const hashFile = join(distDir, 'agentstack-source-hash');

/** Everything that goes into a build (runtime-read files such as data/hands and public/ are not). */
function sourceHash() {
  const hash = createHash('sha256');
  const inputs = ['src', 'next.config.ts', 'postcss.config.mjs', 'tsconfig.json', 'package.json', '../runtime/src'];
  const walk = (path) => {
    if (!existsSync(path)) return;
    if (statSync(path).isDirectory()) {
      for (const name of readdirSync(path).sort()) walk(join(path, name));
      return;
    }
    hash.update(relative(dir, path));
    hash.update('\0');
    hash.update(readFileSync(path));
    hash.update('\0');
  };
  for (const input of inputs) walk(join(dir, input));
  hash.update(process.version);
  return hash.digest('hex');
}

const isAlive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
};

/** One build at a time per checkout (two stacks starting together must not build into the same folder). */
async function withBuildLock(fn) {
  const lock = join(dir, '.next-build.lock');
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      const holder = Number(readFileSync(join(lock, 'pid'), 'utf8').trim() || '0');
      if (holder && !isAlive(holder)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function run(args) {
  const child = spawn(process.execPath, [next, ...args], { cwd: dir, stdio: 'inherit', env: process.env });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

if (mode === 'dev') {
  run(['dev', '-H', values.host, '-p', values.port]);
} else {
  await withBuildLock(() => {
    const wanted = sourceHash();
    const current = existsSync(join(distDir, 'BUILD_ID')) && existsSync(hashFile) && readFileSync(hashFile, 'utf8');
    if (current === wanted) return;
    console.log(`web: building (${existsSync(join(distDir, 'BUILD_ID')) ? 'sources changed' : 'no build yet'})`);
    const started = Date.now();
    const result = spawnSync(process.execPath, [next, 'build'], { cwd: dir, stdio: 'inherit', env: process.env });
    if (result.status !== 0) {
      console.error('web: next build failed');
      process.exit(1);
    }
    writeFileSync(hashFile, wanted);
    console.log(`web: built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
  if (values['build-only']) process.exit(0);
  await serveProduction(values.host, Number(values.port));
}

async function serveProduction(hostname, port) {
  process.env.NODE_ENV = 'production';
  const { default: createNext } = await import('next');
  const app = createNext({ dev: false, dir, hostname, port });
  await app.prepare();
  const handle = app.getRequestHandler();
  const trusted = trustedProxies(process.env.WEB_TRUSTED_PROXIES);
  const server = createServer((req, res) => {
    setForwardedHeaders(req, trusted);
    handle(req, res);
  });
  // Longer than a load balancer's idle timeout, so it never reuses a connection we just closed.
  server.keepAliveTimeout = 65_000;
  await new Promise((resolve) => server.listen(port, hostname, resolve));
  console.log(`web: ready on http://${hostname}:${port}`);
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
