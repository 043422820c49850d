import { issueApiKey } from '@agentsquads/api/src/api-keys.js';
import type { PlatformDB } from '@agentsquads/api/src/db.js';
import { PlatformStore } from '@agentsquads/api/src/store.js';
import { launchBrowser } from '@agentsquads/web/e2e/support/browser.ts';
import { startWebStack } from '@agentsquads/web/e2e/support/stack.ts';
import { createDatabase } from '@agentstack/db';
import { type Figure, percentile, report, SMOKE } from './lib.js';

/**
 * The web app (platform/web), in the real demo stack it runs in under `start --demo`:
 *  1. server response time of the landing page (server-rendered on every request: Hands read from disk, the
 *     price list from the platform API) versus a static file from the same Next.js server, and versus the
 *     platform API's health route (one PostgreSQL round trip) — complete responses, one at a time, interleaved;
 *  2. time from clicking Send in Chromium to the first streamed token painted on screen (browser → web proxy →
 *     platform API → tenant runtime → LLM proxy → demo model and back) versus the same prompt sent straight to
 *     the LLM proxy with the tenant's API key (time to the first content delta).
 * Part 2 needs tenant runtimes (`POST /api/chat` working in this stack); without them it is reported as skipped.
 */
const PROMPT = 'Show me some code: a python function';

/**
 * Runs in the page (a string: this package is type-checked without the DOM): clicks Send and resolves with
 * the milliseconds until the first frame painted with assistant text in it.
 */
const FIRST_TOKEN_ON_SCREEN = `new Promise((resolve, reject) => {
  const before = document.querySelectorAll('[data-testid="assistant-message"]').length;
  const t0 = performance.now();
  const observer = new MutationObserver(() => {
    const all = document.querySelectorAll('[data-testid="assistant-message"]');
    const last = all[all.length - 1];
    if (all.length > before && last && last.querySelector('.md') && last.querySelector('.md').textContent.trim()) {
      observer.disconnect();
      requestAnimationFrame(() => resolve(performance.now() - t0));
    }
  });
  observer.observe(document.body, { childList: true, subtree: true, characterData: true });
  document.querySelector('[data-testid="send-button"]').click();
  setTimeout(() => reject(new Error('no token on screen within 60 s')), 60000);
})`;

export async function main() {
  const env = await startWebStack({ LOG_LEVEL: 'warn' });
  const notes: string[] = [];
  const figures: Figure[] = [];
  try {
    // ---- 1. landing page ---------------------------------------------------------------------------------
    const targets = {
      landing: `${env.web}/`,
      static: `${env.web}/icon.svg`,
      apiHealth: `${env.api}/api/health`,
    };
    const fetchAll = async (url: string) => {
      const t0 = performance.now();
      const res = await fetch(url);
      const body = await res.arrayBuffer();
      if (res.status !== 200 || body.byteLength === 0) throw new Error(`${url} answered ${res.status}`);
      return { ms: performance.now() - t0, bytes: body.byteLength };
    };
    const rounds = SMOKE ? 10 : 300;
    const times = { landing: [] as number[], static: [] as number[], apiHealth: [] as number[] };
    let landingBytes = 0;
    for (let i = 0; i < (SMOKE ? 3 : 30); i++) for (const url of Object.values(targets)) await fetchAll(url);
    for (let i = 0; i < rounds; i++) {
      const order = (
        i % 2 ? ['landing', 'static', 'apiHealth'] : ['apiHealth', 'static', 'landing']
      ) as (keyof typeof targets)[];
      for (const name of order) {
        const { ms, bytes } = await fetchAll(targets[name]);
        times[name].push(ms);
        if (name === 'landing') landingBytes = bytes;
      }
    }
    const p = percentile;
    figures.push(
      {
        label: 'landing p50 vs static file',
        ours: p(times.landing, 50),
        peer: p(times.static, 50),
        unit: 'ms',
        higherIsBetter: false,
      },
      {
        label: 'landing p99 vs static file',
        ours: p(times.landing, 99),
        peer: p(times.static, 99),
        unit: 'ms',
        higherIsBetter: false,
      },
      {
        label: 'landing p50 vs API health',
        ours: p(times.landing, 50),
        peer: p(times.apiHealth, 50),
        unit: 'ms',
        higherIsBetter: false,
      },
    );
    notes.push(
      `Landing page: ${rounds} complete responses each, one at a time, interleaved with GET /icon.svg (same Next.js ` +
        `server, static) and GET /api/health (platform API); the page is ${(landingBytes / 1024).toFixed(0)} KiB of HTML.`,
    );

    // ---- 2. first token on screen --------------------------------------------------------------------------
    const browser = await launchBrowser();
    try {
      const page = await browser.context.newPage();
      const email = `bench-${Date.now().toString(36)}@example.com`;
      const signUp = await page.request.post(`${env.web}/api/auth/sign-up/email`, {
        data: { name: 'bench', email, password: 'bench password 123' },
        headers: { origin: env.web },
      });
      if (!signUp.ok()) throw new Error(`sign-up failed: ${signUp.status()}`);
      const probe = await page.request.post(`${env.web}/api/chat`, {
        data: { message: 'hello' },
        headers: { origin: env.web },
      });
      const probeText = await probe.text();
      if (probe.status() === 404 || (probe.status() === 503 && probeText.includes('not configured'))) {
        notes.push(
          'First token on screen: skipped — this stack runs no tenant runtimes (POST /api/chat answers ' +
            `${probe.status()}); it runs once \`start\` wires a runtime backend.`,
        );
      } else {
        // The direct calls go out as a second tenant with an API key of its own: issuing one revokes the
        // tenant's previous key, which its runtime (the browser path) holds.
        const directEmail = `bench-direct-${Date.now().toString(36)}@example.com`;
        const directSignUp = await fetch(`${env.web}/api/auth/sign-up/email`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', origin: env.web },
          body: JSON.stringify({ name: 'bench direct', email: directEmail, password: 'bench password 123' }),
        });
        if (!directSignUp.ok) throw new Error(`sign-up failed: ${directSignUp.status}`);
        const database = createDatabase<PlatformDB>({
          connectionString: env.stack.endpoints.database?.urls.platform as string,
          max: 1,
        });
        const store = new PlatformStore(database.db);
        const user = await store.findUserByEmail(directEmail);
        const tenant = user ? await store.findTenantOfUser(user.id) : undefined;
        if (!tenant) throw new Error('no tenant for the bench user');
        const apiKey = await issueApiKey(store, tenant.id);
        await database.db.destroy();
        await database.pool.end().catch(() => {});

        await page.goto(`${env.web}/dashboard/chat`);
        const iterations = SMOKE ? 3 : 30;
        const ui: number[] = [];
        const direct: number[] = [];
        const onScreen = async () => {
          await page.getByTestId('chat-input').fill(PROMPT);
          const ms = await page.evaluate<number>(FIRST_TOKEN_ON_SCREEN);
          await page.waitForSelector('[data-testid="send-button"]', { timeout: 120_000 });
          return ms;
        };
        const straight = async () => {
          const t0 = performance.now();
          const res = await fetch(`${env.llmProxy}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
            body: JSON.stringify({ model: 'demo', stream: true, messages: [{ role: 'user', content: PROMPT }] }),
          });
          if (res.status !== 200 || !res.body) throw new Error(`LLM proxy answered ${res.status}`);
          let ttft = 0;
          let text = '';
          const decoder = new TextDecoder();
          for await (const bytes of res.body) {
            text += decoder.decode(bytes, { stream: true });
            if (!ttft && /"content":"[^"]/.test(text)) ttft = performance.now() - t0;
          }
          if (!ttft) throw new Error('no content from the LLM proxy');
          return ttft;
        };
        await onScreen(); // warm: the runtime is up, pages compiled into the JIT
        await straight();
        for (let i = 0; i < iterations; i++) {
          if (i % 2) {
            ui.push(await onScreen());
            direct.push(await straight());
          } else {
            direct.push(await straight());
            ui.push(await onScreen());
          }
          // A new conversation now and then keeps the context (and so the prompt) the same size.
          if (i % 5 === 4) await page.goto(`${env.web}/dashboard/chat`);
        }
        figures.push(
          {
            label: 'first token p50: on screen vs LLM proxy',
            ours: p(ui, 50),
            peer: p(direct, 50),
            unit: 'ms',
            higherIsBetter: false,
          },
          {
            label: 'first token p90: on screen vs LLM proxy',
            ours: p(ui, 90),
            peer: p(direct, 90),
            unit: 'ms',
            higherIsBetter: false,
          },
        );
        notes.push(
          `First token: ${iterations} sends in Chromium (click → first assistant text painted) interleaved with the same ` +
            `prompt streamed straight from the LLM proxy (request → first content delta) by a second tenant, demo model. ` +
            `Ratio on screen / direct: p50 ${(p(ui, 50) / p(direct, 50)).toFixed(2)}; added p50 ${(p(ui, 50) - p(direct, 50)).toFixed(1)} ms.`,
        );
      }
    } finally {
      await browser.close();
    }
    await report({
      name: 'web',
      ours: 'web app (Next.js landing SSR; chat through the web proxy, platform API and tenant runtime)',
      peer: 'a static file from the same server / the platform API health route; the LLM proxy called directly',
      figures,
      notes,
    });
  } finally {
    await env.stop();
  }
}
