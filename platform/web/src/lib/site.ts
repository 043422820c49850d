/** The public origin of the site (links in sitemap, Open Graph), as the platform API knows it too. */
export const siteUrl = () => (process.env.PLATFORM_PUBLIC_URL ?? 'http://localhost:3000').replace(/\/+$/, '');

export const SITE = {
  name: 'AgentSquads',
  title: 'AgentSquads — your own AI agent squad, in a sandbox of its own',
  description:
    'Sign up and get a personal AI agent with its own private workspace: chat on the web, Telegram or WhatsApp, ' +
    'run guided Hands for research and code, pay only for the tokens you use.',
};
