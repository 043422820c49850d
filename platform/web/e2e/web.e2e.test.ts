import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Browser,
  launchBrowser,
  shoot,
  type WalkthroughShot,
  walkthroughShot,
  writeWalkthroughIndex,
} from './support/browser.js';
import { startWebStack, type WebStack } from './support/stack.js';
import { totpFromUri } from './support/totp.js';

/**
 * The web app end to end in Debian Chromium, against the real stack in demo mode (platform API with Better
 * Auth and the LLM proxy, the demo model, embedded PostgreSQL) started here on free ports.
 */

let env: WebStack;
let browser: Browser;
/** Why chat cannot work in this stack (probed once), so every chat test fails with the reason, not a timeout. */
let chatProblem: string | undefined;
const requireChat = () => {
  if (chatProblem) throw new Error(chatProblem);
};
const shots: WalkthroughShot[] = [];
const password = 'correct horse battery staple';
const stamp = Date.now().toString(36);
const mainUser = { name: 'Ada Lovelace', email: `ada-${stamp}@example.com` };

beforeAll(async () => {
  // A configured OAuth provider (its sign-in button and redirect are tested; github.com itself is not reached).
  env = await startWebStack({ GITHUB_CLIENT_ID: 'e2e-client-id', GITHUB_CLIENT_SECRET: 'e2e-client-secret' });
  browser = await launchBrowser();
  // Asked as a signed-in user (an anonymous request is refused before routing).
  const signUp = await fetch(`${env.web}/api/auth/sign-up/email`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: env.web },
    body: JSON.stringify({ name: 'probe', email: `probe-${stamp}@example.com`, password }),
  });
  const cookie = signUp.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const probe = await fetch(`${env.web}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: env.web, cookie },
    body: JSON.stringify({ message: 'hello' }),
  });
  const answer = await probe.text();
  if (probe.status !== 200 || !answer.includes('event: done')) {
    chatProblem = `chat does not work in this stack: POST /api/chat answered ${probe.status}: ${answer.slice(0, 500)}`;
  }
});

afterAll(async () => {
  await writeWalkthroughIndex(shots).catch(() => undefined);
  await browser?.close();
  await env?.stop();
});

/** A page that records console errors and uncaught exceptions. */
async function newPage(viewport = { width: 1280, height: 800 }) {
  const page = await browser.context.newPage();
  await page.setViewportSize(viewport);
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  return { page, errors };
}

const balanceMicros = async (page: Page) =>
  BigInt((await page.getByTestId('balance').getAttribute('data-balance-micros')) ?? 'NaN');

async function sendMessage(page: Page, text: string) {
  await page.getByTestId('chat-input').fill(text);
  await page.getByTestId('send-button').click();
}

/** Samples the last assistant message's text in the page every 25 ms until it is no longer streaming. */
async function sampleStreaming(page: Page): Promise<{ samples: string[]; status: string; text: string }> {
  return page.evaluate(
    () =>
      new Promise<{ samples: string[]; status: string; text: string }>((resolve, reject) => {
        const samples: string[] = [];
        const started = Date.now();
        const timer = setInterval(() => {
          const all = document.querySelectorAll<HTMLElement>('[data-testid="assistant-message"]');
          const last = all[all.length - 1];
          const status = last?.dataset.status ?? 'missing';
          const text = last?.innerText ?? '';
          if (status === 'streaming' && text.trim() && samples.at(-1) !== text) samples.push(text);
          if (last && status !== 'streaming') {
            clearInterval(timer);
            resolve({ samples, status, text });
          } else if (Date.now() - started > 120_000) {
            clearInterval(timer);
            reject(new Error(`still streaming after 120 s (status ${status})`));
          }
        }, 25);
      }),
  );
}

async function zeroCredit(email: string) {
  const url = env.stack.endpoints.database?.urls.platform;
  if (!url) throw new Error('no platform database in endpoints');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Balances only move through ledger rows (database triggers refuse anything else).
    await client.query(
      `insert into credit_ledger (tenant_id, amount_micros, kind, memo)
       select c.tenant_id, -c.balance_micros, 'adjustment', 'e2e: use up the credit'
       from credits c join tenants t on t.id = c.tenant_id join users u on u.id = t.user_id
       where u.email = $1 and c.balance_micros > 0`,
      [email],
    );
  } finally {
    await client.end();
  }
}

describe('landing page', () => {
  it('is server-rendered with meta tags, the Hands, live prices, sitemap and robots, without console errors', async () => {
    const res = await fetch(`${env.web}/`);
    expect(res.status).toBe(200);
    const html = await res.text();
    // Server-rendered: the content is in the HTML, not fetched by the browser.
    expect(html).toContain('<title>AgentSquads — your own AI agent squad, in a sandbox of its own</title>');
    expect(html).toMatch(/<meta name="description" content="[^"]{50,}"/);
    expect(html).toMatch(/<meta property="og:title" content="AgentSquads/);
    expect(html).toMatch(/<meta property="og:image" content="http:\/\/127\.0\.0\.1:\d+\/walkthrough\/og\.png"/);
    expect(html).toContain('<meta name="twitter:card" content="summary_large_image"/>');
    expect(html).toContain('<link rel="canonical"');
    // Analytics only when configured by env (it is not here).
    expect(html).not.toMatch(/plausible|posthog/i);
    const hands = (
      await readFile(join(import.meta.dirname, '..', '..', '..', 'data', 'hands', 'coder.toml'), 'utf8')
    ).match(/description = "([^"]+)"/)?.[1];
    expect(html).toContain(hands?.replace(/&/g, '&amp;').slice(0, 40));

    const sitemap = await (await fetch(`${env.web}/sitemap.xml`)).text();
    expect(sitemap).toContain('<urlset');
    expect(sitemap).toContain(`<loc>${env.web}/</loc>`);
    const robots = await (await fetch(`${env.web}/robots.txt`)).text();
    expect(robots).toContain(`Sitemap: ${env.web}/sitemap.xml`);
    expect(robots).toContain('Disallow: /dashboard');

    const { page, errors } = await newPage();
    await page.goto(`${env.web}/`, { waitUntil: 'networkidle' });
    expect(await page.locator('[data-testid="hands"] article').count()).toBe(3);
    // The pricing calculator prices from GET /api/public/models.
    const estimate = page.getByTestId('pricing-estimate');
    await page.getByTestId('pricing-model').selectOption('gpt-4o');
    await page.getByTestId('pricing-input').fill('1000000');
    await page.getByTestId('pricing-output').fill('0');
    const models = (await (await fetch(`${env.api}/api/public/models`)).json()) as {
      items: { name: string; pricing: { inputPerMillion: string } }[];
    };
    const gpt4o = models.items.find((m) => m.name === 'gpt-4o');
    await expect.poll(() => estimate.innerText()).toBe(`$${gpt4o?.pricing.inputPerMillion}`);
    await page.getByTestId('pricing-input').fill('20000');
    await page.getByTestId('pricing-output').fill('4000');
    await shoot(page, 'landing-full', { fullPage: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await walkthroughShot(
      page,
      {
        file: '01-landing.png',
        title: 'Sign up in one step',
        caption: 'The landing page: what your agent does, the Hands, live prices and the sign-up form.',
      },
      shots,
    );
    await page.setViewportSize({ width: 1200, height: 630 });
    await walkthroughShot(page, { file: 'og.png', title: 'AgentSquads', caption: 'Open Graph card' }, []);
    expect(errors).toEqual([]);
    await page.close();
  });
});

describe('signed out', () => {
  it('redirects every dashboard page to sign-in (server-side), keeping where it was going', async () => {
    for (const path of ['/dashboard', '/dashboard/chat', '/dashboard/account']) {
      const res = await fetch(`${env.web}${path}`, { redirect: 'manual' });
      expect([302, 303, 307, 308]).toContain(res.status);
      expect(res.headers.get('location')).toContain(`/signin?next=${encodeURIComponent(path)}`);
    }
    const { page } = await newPage();
    await page.goto(`${env.web}/dashboard/chat`);
    await page.waitForURL(/\/signin\?next=%2Fdashboard%2Fchat$/);
    await expect.poll(() => page.getByRole('heading', { name: 'Welcome back' }).isVisible()).toBe(true);
    // A made-up cookie is no session either.
    await browser.context.addCookies([
      { name: 'agentsquads.session_token', value: 'forged.value', url: env.web, httpOnly: true },
    ]);
    await page.goto(`${env.web}/dashboard/account`);
    await page.waitForURL(/\/signin\?next=%2Fdashboard%2Faccount$/);
    await browser.context.clearCookies();
    await page.close();
  });
});

describe('account and chat', () => {
  let page: Page;
  let errors: string[];

  it('signs up from the landing page form and lands in the chat with the free credit', async () => {
    ({ page, errors } = await newPage());
    await page.goto(`${env.web}/#signup`);
    const form = page.getByTestId('landing-signup-form');
    await form.getByLabel('Name').fill(mainUser.name);
    await form.getByLabel('Email').fill(mainUser.email);
    await form.getByLabel('Password').fill(password);
    await walkthroughShot(
      page,
      {
        file: '02-signup.png',
        title: 'Create your account',
        caption: 'Email and password (or any configured OAuth provider); free credit to start.',
      },
      shots,
    );
    await form.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL(/\/dashboard\/chat$/);
    await expect.poll(() => page.getByTestId('empty-chat').isVisible()).toBe(true);
    const credits = (await (await page.request.get(`${env.web}/api/credits`)).json()) as { balanceMicros: string };
    expect(BigInt(credits.balanceMicros)).toBeGreaterThan(0n);
    expect(await balanceMicros(page)).toBe(BigInt(credits.balanceMicros));
    expect(await page.getByTestId('balance').innerText()).toBe('$10.00');
    // The navigation lists only pages that exist.
    const links = await page
      .getByRole('navigation', { name: 'Dashboard' })
      .getByRole('link')
      .evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).pathname));
    for (const href of links) expect((await fetch(`${env.web}${href}`, { redirect: 'manual' })).status).not.toBe(404);
    await shoot(page, 'dashboard-empty');
  });

  it('signs out, refuses a wrong password clearly, and signs back in', async () => {
    await page.getByTestId('account-menu-button').click();
    await expect.poll(() => page.getByTestId('account-email').innerText()).toBe(mainUser.email);
    await page.getByTestId('sign-out').click();
    await page.waitForURL(/\/signin$/);
    const form = page.getByTestId('signin-form');
    await form.getByLabel('Email').fill(mainUser.email);
    await form.getByLabel('Password').fill('not the password');
    await form.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByTestId('auth-error').innerText()).toBe('Wrong email or password.');
    await shoot(page, 'signin-error');
    await form.getByLabel('Password').fill(password);
    await form.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/dashboard\/chat$/);
  });

  it('streams an answer token by token, charges it, and keeps it across a reload', async () => {
    requireChat();
    const before = await balanceMicros(page);
    await sendMessage(page, 'Hello! What can you do?');
    await expect.poll(() => page.getByTestId('stop-button').isVisible()).toBe(true);
    const { samples, status, text } = await sampleStreaming(page);
    expect(status).toBe('done');
    // Rendered at least three times with growing text before it completed.
    expect(samples.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < samples.length; i++) expect(samples[i]!.length).toBeGreaterThan(samples[i - 1]!.length);
    expect(text).toContain('demo model');
    // The header balance went down by exactly what this turn was charged.
    const last = page.getByTestId('assistant-message').last();
    const charged = BigInt((await last.getAttribute('data-charged-micros')) ?? 'NaN');
    expect(charged).toBeGreaterThan(0n);
    await expect.poll(() => balanceMicros(page)).toBe(before - charged);
    const credits = (await (await page.request.get(`${env.web}/api/credits`)).json()) as { balanceMicros: string };
    expect(BigInt(credits.balanceMicros)).toBe(before - charged);
    // The conversation is in the URL and in the list; a reload shows the history from the API.
    await page.waitForURL(/\/dashboard\/chat\?c=cnv_/);
    await expect.poll(() => page.getByTestId('conversation-item').count()).toBe(1);
    await page.reload();
    await expect.poll(() => page.getByTestId('user-message').first().innerText()).toContain('Hello! What can you do?');
    await expect.poll(() => page.getByTestId('assistant-message').first().innerText()).toContain('demo model');
    expect(await balanceMicros(page)).toBe(before - charged);
  });

  it('renders code blocks highlighted, with a copy button', async () => {
    requireChat();
    await sendMessage(page, 'Show me some code: a python function');
    const { status } = await sampleStreaming(page);
    expect(status).toBe('done');
    const block = page.getByTestId('assistant-message').last().locator('[data-code-block]').first();
    await expect.poll(() => block.locator('code.language-python .hljs-keyword').count()).toBeGreaterThan(2);
    await expect.poll(() => block.locator('.hljs-string').count()).toBeGreaterThan(0);
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: env.web });
    await block.getByRole('button', { name: 'Copy code' }).click();
    await expect.poll(() => block.getByRole('button', { name: 'Copy code' }).innerText()).toBe('Copied');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toContain('def column_total');
    await block.scrollIntoViewIfNeeded();
    await walkthroughShot(
      page,
      {
        file: '03-chat-code.png',
        title: 'Chat with your agent',
        caption: 'Answers stream in; code comes back highlighted, with a copy button.',
      },
      shots,
    );
    await shoot(page, 'chat-code');
  });

  it('shows tool activity compactly, and attaches uploaded files', async () => {
    requireChat();
    await page.getByTestId('file-input').setInputFiles({
      name: 'notes.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('quarterly numbers: 1, 2, 3\n'),
    });
    await expect.poll(() => page.getByTestId('attachments').innerText()).toContain('uploads/notes.txt');
    await sendMessage(page, 'What files are in my workspace?');
    const { status } = await sampleStreaming(page);
    expect(status).toBe('done');
    expect(await page.getByTestId('user-message').last().innerText()).toContain('uploads/notes.txt');
    const tool = page.getByTestId('assistant-message').last().getByTestId('tool-activity').first();
    await expect.poll(() => tool.innerText()).toContain('list_files');
    // Collapsed by default; opens to show the output.
    expect(await tool.evaluate((el) => (el as HTMLDetailsElement).open)).toBe(false);
    await tool.locator('summary').click();
    await expect.poll(() => tool.innerText()).toContain('uploads/');
    await walkthroughShot(
      page,
      {
        file: '04-tools.png',
        title: 'Watch it work',
        caption: 'Every tool the agent runs in its sandbox is shown, collapsed until you open it.',
      },
      shots,
    );
  });

  it('stops a run with the stop button', async () => {
    requireChat();
    await sendMessage(page, 'Hello again, tell me everything');
    const last = page.getByTestId('assistant-message').last();
    await expect.poll(async () => (await last.innerText()).length).toBeGreaterThan(20);
    await page.getByTestId('stop-button').click();
    await expect.poll(() => last.getAttribute('data-status')).toBe('stopped');
    await expect.poll(() => page.getByTestId('send-button').isVisible()).toBe(true);
    // The abort went through the web app's proxy to the platform API, which kept the partial answer.
    const conversationId = new URL(page.url()).searchParams.get('c');
    await expect
      .poll(async () => {
        const res = await page.request.get(`${env.web}/api/conversations/${conversationId}/messages?limit=100`);
        const { items } = (await res.json()) as { items: { role: string; metadata: { stopped?: boolean } }[] };
        return items.filter((m) => m.role === 'assistant').at(-1)?.metadata.stopped;
      })
      .toBe(true);
    await page.reload();
    await expect.poll(() => page.getByTestId('assistant-message').last().getAttribute('data-status')).toBe('stopped');
  });

  it('works at 390×844: no page scrolls sideways', async () => {
    const mobile = await newPage({ width: 390, height: 844 });
    for (const path of ['/', '/signin', '/signup', '/dashboard/chat', '/dashboard/account']) {
      await mobile.page.goto(`${env.web}${path}`);
      const overflow = await mobile.page.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      expect(overflow, `horizontal overflow on ${path}`).toBeLessThanOrEqual(0);
    }
    await mobile.page.goto(`${env.web}/dashboard/chat`);
    await shoot(mobile.page, 'mobile-chat');
    await mobile.page.getByTestId('toggle-conversations').click();
    await expect.poll(() => mobile.page.getByTestId('conversation-list').isVisible()).toBe(true);
    expect(await mobile.page.getByTestId('chat-input').isVisible()).toBe(false);
    await shoot(mobile.page, 'mobile-conversations');
    await mobile.page.getByTestId('toggle-conversations').click();
    await expect.poll(() => mobile.page.getByTestId('chat-input').isVisible()).toBe(true);
    await mobile.page.goto(`${env.web}/`);
    await shoot(mobile.page, 'mobile-landing', { fullPage: true });
    await mobile.page.close();
  });

  it('works at 390×844: sending streams an answer without horizontal scroll', async () => {
    requireChat();
    const mobile = await newPage({ width: 390, height: 844 });
    await mobile.page.goto(`${env.web}/dashboard/chat`);
    await sendMessage(mobile.page, 'Show me some code in typescript');
    const { status } = await sampleStreaming(mobile.page);
    expect(status).toBe('done');
    const overflow = await mobile.page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    expect(overflow).toBeLessThanOrEqual(0);
    await walkthroughShot(
      mobile.page,
      { file: '05-mobile.png', title: 'On your phone', caption: 'The same chat, made for small screens.' },
      shots,
    );
    await shoot(mobile.page, 'mobile-chat-answer');
    await mobile.page.close();
  });

  it('had no script errors in the signed-in pages', () => {
    // Chromium logs every 4xx answer to fetch (a wrong password, 402) as a console error: those are expected.
    expect(
      errors.filter((e) => !e.startsWith('Failed to load resource: the server responded with a status of 4')),
    ).toEqual([]);
  });
});

describe('OAuth', () => {
  it('shows a button per configured provider, which sends the browser to the provider', async () => {
    await browser.context.clearCookies();
    const { page } = await newPage();
    let authorize: URL | undefined;
    await page.route('https://github.com/**', async (route) => {
      authorize = new URL(route.request().url());
      await route.fulfill({ status: 200, contentType: 'text/html', body: '<title>GitHub (stand-in)</title>' });
    });
    await page.goto(`${env.web}/signin`);
    const buttons = page.getByTestId('oauth-buttons').getByRole('button');
    expect(await buttons.allInnerTexts()).toEqual(['Continue with GitHub']);
    await buttons.first().click();
    await page.waitForURL(/^https:\/\/github\.com\/login\/oauth\/authorize/);
    expect(authorize?.searchParams.get('client_id')).toBe('e2e-client-id');
    expect(authorize?.searchParams.get('redirect_uri')).toBe(`${env.web}/api/auth/callback/github`);
    // The OAuth state cookie came back through the web app's proxy.
    const cookies = await browser.context.cookies(env.web);
    expect(cookies.some((c) => c.name.includes('state'))).toBe(true);
    await page.close();
  });
});

describe('a tenant without credit', () => {
  it('sees "credits exhausted — top up" in the chat, and sending is refused before any stream', async () => {
    const user = { email: `broke-${stamp}@example.com` };
    await browser.context.clearCookies();
    const { page } = await newPage();
    await page.goto(`${env.web}/signup`);
    const form = page.getByTestId('signup-form');
    await form.getByLabel('Email').fill(user.email);
    await form.getByLabel('Password').fill(password);
    await form.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL(/\/dashboard\/chat$/);
    await zeroCredit(user.email);
    await page.reload();
    await expect.poll(() => page.getByTestId('credits-exhausted').innerText()).toContain('Credits exhausted — top up');
    expect(await page.getByTestId('balance').innerText()).toBe('$0.00');
    await shoot(page, 'credits-exhausted');
    requireChat();
    await sendMessage(page, 'Hello?');
    await expect.poll(() => page.getByTestId('credits-exhausted').isVisible()).toBe(true);
    // Nothing was sent: the text is back in the input, no message was added.
    await expect.poll(() => page.getByTestId('chat-input').inputValue()).toBe('Hello?');
    expect(await page.getByTestId('user-message').count()).toBe(0);

    // Deleting the account: confirm by typing the email; afterwards the dashboard is gone.
    await page.getByTestId('account-menu-button').click();
    await page.getByTestId('delete-account').click();
    const dialog = page.getByTestId('delete-account-dialog');
    expect(await dialog.getByTestId('delete-confirm-button').isDisabled()).toBe(true);
    await dialog.getByTestId('delete-confirm-input').fill(user.email);
    await dialog.getByTestId('delete-confirm-button').click();
    await page.waitForURL(/\/\?deleted=1$/);
    await page.goto(`${env.web}/dashboard/chat`);
    await page.waitForURL(/\/signin/);
    const signIn = await fetch(`${env.web}/api/auth/sign-in/email`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: env.web },
      body: JSON.stringify({ email: user.email, password }),
    });
    expect(signIn.status).toBe(401);
    await page.close();
  });
});

describe('two-factor sign-in', () => {
  it('asks for the TOTP code after the password when the account enrolled an authenticator', async () => {
    const user = { email: `totp-${stamp}@example.com` };
    await browser.context.clearCookies();
    const { page } = await newPage();
    const api = page.request;
    expect(
      (
        await api.post(`${env.web}/api/auth/sign-up/email`, {
          data: { name: 'T', email: user.email, password },
          headers: { origin: env.web },
        })
      ).ok(),
    ).toBe(true);
    const enabled = await api.post(`${env.web}/api/auth/two-factor/enable`, {
      data: { password },
      headers: { origin: env.web },
    });
    expect(enabled.ok()).toBe(true);
    const { totpURI } = (await enabled.json()) as { totpURI: string };
    const verified = await api.post(`${env.web}/api/auth/two-factor/verify-totp`, {
      data: { code: totpFromUri(totpURI) },
      headers: { origin: env.web },
    });
    expect(verified.ok()).toBe(true);
    await browser.context.clearCookies();

    await page.goto(`${env.web}/signin?next=%2Fdashboard%2Faccount`);
    const form = page.getByTestId('signin-form');
    await form.getByLabel('Email').fill(user.email);
    await form.getByLabel('Password').fill(password);
    await form.getByRole('button', { name: 'Sign in' }).click();
    const totp = page.getByTestId('totp-form');
    await expect.poll(() => totp.isVisible()).toBe(true);
    await totp.getByLabel('Code').fill('000000');
    await totp.getByRole('button', { name: 'Verify' }).click();
    await expect.poll(() => page.getByTestId('auth-error').innerText()).toContain('code is not right');
    await shoot(page, 'signin-totp');
    await totp.getByLabel('Code').fill(totpFromUri(totpURI));
    await totp.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL(/\/dashboard\/account$/);
    await expect.poll(() => page.getByText('On (authenticator app)').isVisible()).toBe(true);
    await shoot(page, 'account');
    await page.close();
  });
});
