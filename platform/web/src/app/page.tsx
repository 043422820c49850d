import type { Metadata } from 'next';
import Link from 'next/link';
import { AuthForm } from '@/components/auth-form';
import { Logo } from '@/components/logo';
import { PricingCalculator } from '@/components/pricing-calculator';
import { loadHands } from '@/lib/hands';
import { getAccount, getAuthProviders, getPublicModels } from '@/lib/server-api';
import { SITE } from '@/lib/site';
import { loadWalkthrough } from '@/lib/walkthrough';

const OG_IMAGE = { url: '/walkthrough/og.png', width: 1200, height: 630, alt: 'AgentSquads' };

export const metadata: Metadata = {
  title: { absolute: SITE.title },
  description: SITE.description,
  alternates: { canonical: '/' },
  openGraph: {
    type: 'website',
    siteName: SITE.name,
    title: SITE.title,
    description: SITE.description,
    url: '/',
    images: [OG_IMAGE],
  },
  twitter: { card: 'summary_large_image', title: SITE.title, description: SITE.description, images: [OG_IMAGE.url] },
};

const FEATURES = [
  {
    title: 'Your own sandbox',
    text: 'Every account gets a private Linux workspace: files persist, commands run, nothing is shared with other users.',
  },
  {
    title: 'Watch it work',
    text: 'Answers stream in as they are written; every tool the agent runs is shown, and you can stop it at any time.',
  },
  {
    title: 'Hands for real jobs',
    text: 'Guided agents for research, code and everyday tasks — pick one, or just chat.',
  },
  {
    title: 'Pay per token',
    text: 'No subscription. Credits are charged from the token counts the model reports, to the micro-dollar.',
  },
  {
    title: 'Any model',
    text: 'OpenAI, Anthropic, Google Gemini, or your own OpenAI-compatible server — chosen per task.',
  },
  {
    title: 'Agent-native tools',
    text: 'Your agent can get its own wallet with a budget, a mailbox and servers through AgentStack.',
  },
];

const HAND_ACCENTS = ['from-accent to-accent3', 'from-accent3 to-accent', 'from-accent-soft to-accent3'];

export default async function LandingPage() {
  const [hands, models, providers, walkthrough, account] = await Promise.all([
    loadHands(),
    getPublicModels(),
    getAuthProviders(),
    loadWalkthrough(),
    getAccount(),
  ]);

  // The hero shows the product itself: the walkthrough's chat screenshot when there is one.
  const hero = walkthrough.find((step) => step.file.includes('chat'));

  return (
    <div className="relative overflow-x-hidden">
      <div
        aria-hidden
        className="pointer-events-none absolute -top-48 left-1/2 h-[32rem] w-[56rem] -translate-x-1/2 rounded-full bg-accent/20 blur-3xl"
      />
      <header className="relative mx-auto flex max-w-6xl items-center justify-between px-4 py-5 sm:px-6">
        <Logo />
        <nav className="flex items-center gap-1 text-sm sm:gap-4">
          <a href="#hands" className="hidden px-2 text-muted hover:text-ink sm:inline">
            Hands
          </a>
          <a href="#pricing" className="hidden px-2 text-muted hover:text-ink sm:inline">
            Pricing
          </a>
          {walkthrough.length > 0 ? (
            <a href="#walkthrough" className="hidden px-2 text-muted hover:text-ink md:inline">
              Walkthrough
            </a>
          ) : null}
          {account ? (
            <Link
              href="/dashboard/chat"
              className="rounded-lg bg-accent px-3 py-1.5 font-medium text-white hover:bg-accent-soft"
            >
              Open dashboard
            </Link>
          ) : (
            <>
              <Link href="/signin" className="px-2 text-muted hover:text-ink">
                Sign in
              </Link>
              <a
                href="#signup"
                className="rounded-lg bg-accent px-3 py-1.5 font-medium text-white hover:bg-accent-soft"
              >
                Get started
              </a>
            </>
          )}
        </nav>
      </header>

      <main className="relative">
        <section className="mx-auto grid max-w-6xl items-center gap-10 px-4 pt-12 pb-16 sm:px-6 sm:pt-20 lg:grid-cols-[1.1fr_1fr]">
          <div>
            <p className="mb-4 inline-flex rounded-full border border-line bg-surface px-3 py-1 text-xs text-muted">
              AI agents for people — each in a sandbox of its own
            </p>
            <h1 className="max-w-3xl text-4xl font-semibold tracking-tight sm:text-6xl">
              Your own <span className="text-gradient">AI agent squad</span>, working for you.
            </h1>
            <p className="mt-6 max-w-2xl text-lg text-muted">
              AgentSquads gives you a personal AI agent with a private workspace where it keeps files, runs code and
              reads the web. Chat with it, hand it a job, watch it work — and pay only for the tokens it uses.
            </p>
            <div className="mt-8 flex flex-wrap gap-3">
              <a href="#signup" className="rounded-xl bg-accent px-5 py-3 font-medium text-white hover:bg-accent-soft">
                Start free
              </a>
              <a
                href="#pricing"
                className="rounded-xl border border-line px-5 py-3 font-medium text-ink hover:border-accent3"
              >
                Estimate your cost
              </a>
            </div>
          </div>
          {hero ? (
            <div className="relative hidden lg:block">
              <div
                aria-hidden
                className="absolute -inset-6 rounded-[2rem] bg-gradient-to-br from-accent/30 to-accent3/20 blur-2xl"
              />
              {/* biome-ignore lint/performance/noImgElement: a static screenshot served as it is */}
              <img
                src={`/walkthrough/${hero.file}`}
                alt={hero.caption}
                width={1280}
                height={800}
                className="relative rounded-2xl border border-line shadow-2xl shadow-black/60"
              />
            </div>
          ) : null}
        </section>

        <section className="mx-auto max-w-6xl px-4 pb-20 sm:px-6" aria-labelledby="what">
          <h2 id="what" className="sr-only">
            What AgentSquads is
          </h2>
          <div className="grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
            {FEATURES.map((f) => (
              <div key={f.title} className="rounded-2xl border border-line bg-surface p-5">
                <h3 className="font-semibold">{f.title}</h3>
                <p className="mt-2 text-sm text-muted">{f.text}</p>
              </div>
            ))}
          </div>
        </section>

        <section id="hands" className="mx-auto max-w-6xl scroll-mt-8 px-4 pb-20 sm:px-6">
          <h2 className="text-2xl font-semibold tracking-tight sm:text-3xl">Hands: agents for a job</h2>
          <p className="mt-2 max-w-2xl text-muted">
            A Hand is an agent set up for one kind of work — its instructions, its tools, its limits. These run today:
          </p>
          <div className="mt-8 grid gap-4 md:grid-cols-3" data-testid="hands">
            {hands.map((hand, i) => (
              <article key={hand.name} className="flex flex-col rounded-2xl border border-line bg-surface p-5">
                <div
                  aria-hidden
                  className={`mb-4 h-10 w-10 rounded-xl bg-gradient-to-br ${HAND_ACCENTS[i % HAND_ACCENTS.length]}`}
                />
                <h3 className="font-semibold capitalize">{hand.name}</h3>
                <p className="mt-2 flex-1 text-sm text-muted">{hand.description}</p>
                <ul className="mt-4 flex flex-wrap gap-1.5" aria-label="Tools">
                  {hand.tools.map((tool) => (
                    <li key={tool} className="rounded-md bg-surface-2 px-2 py-0.5 font-mono text-xs text-accent3">
                      {tool}
                    </li>
                  ))}
                </ul>
              </article>
            ))}
          </div>
        </section>

        <section id="pricing" className="mx-auto max-w-6xl scroll-mt-8 px-4 pb-20 sm:px-6">
          <h2 className="text-2xl font-semibold tracking-tight sm:text-3xl">Pricing: pay for what your agent uses</h2>
          <p className="mt-2 mb-8 max-w-2xl text-muted">
            New accounts start with free credit. After that you top up and pay per token at these prices — pick a model
            and a task size to see what it costs.
          </p>
          <PricingCalculator models={models} />
        </section>

        {walkthrough.length > 0 ? (
          <section id="walkthrough" className="mx-auto max-w-6xl scroll-mt-8 px-4 pb-20 sm:px-6">
            <h2 className="text-2xl font-semibold tracking-tight sm:text-3xl">A quick walkthrough</h2>
            <p className="mt-2 mb-8 max-w-2xl text-muted">
              Screenshots of the running product, taken by our browser tests.
            </p>
            <ol className="grid gap-6 md:grid-cols-2">
              {walkthrough.map((step, i) => (
                <li key={step.file} className="overflow-hidden rounded-2xl border border-line bg-surface">
                  {/* biome-ignore lint/performance/noImgElement: static screenshots served as they are */}
                  <img
                    src={`/walkthrough/${step.file}`}
                    alt={step.title}
                    loading="lazy"
                    className="aspect-[16/10] w-full object-cover object-top"
                  />
                  <div className="p-4">
                    <h3 className="font-semibold">
                      {i + 1}. {step.title}
                    </h3>
                    <p className="mt-1 text-sm text-muted">{step.caption}</p>
                  </div>
                </li>
              ))}
            </ol>
          </section>
        ) : null}

        <section id="signup" className="mx-auto max-w-6xl scroll-mt-8 px-4 pb-24 sm:px-6">
          <div className="grid gap-8 rounded-3xl border border-line bg-gradient-to-br from-surface to-surface-2 p-6 sm:p-10 lg:grid-cols-2">
            <div>
              <h2 className="text-2xl font-semibold tracking-tight sm:text-3xl">Get your agent</h2>
              <p className="mt-3 text-muted">
                Create an account and your agent is ready to chat. Free credit to start; no card needed.
              </p>
              <ul className="mt-6 space-y-2 text-sm text-muted">
                <li>✓ Private sandbox with persistent files</li>
                <li>✓ Streaming chat with tools you can watch</li>
                <li>✓ Delete your account and all its data at any time</li>
              </ul>
            </div>
            {account ? (
              <div className="flex items-center">
                <Link
                  href="/dashboard/chat"
                  className="rounded-xl bg-accent px-5 py-3 font-medium text-white hover:bg-accent-soft"
                >
                  You are signed in — open your chat
                </Link>
              </div>
            ) : (
              <AuthForm mode="signup" providers={providers} compact idPrefix="landing-signup" />
            )}
          </div>
        </section>
      </main>

      <footer className="border-t border-line">
        <div className="mx-auto flex max-w-6xl flex-col gap-3 px-4 py-8 text-sm text-muted sm:flex-row sm:items-center sm:justify-between sm:px-6">
          <Logo />
          <p>© {new Date().getUTCFullYear()} AgentSquads. Built on AgentStack.</p>
        </div>
      </footer>
    </div>
  );
}
