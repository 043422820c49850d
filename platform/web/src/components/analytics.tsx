import { connection } from 'next/server';

/**
 * Analytics only when switched on by env, read at request time (no rebuild): Plausible with
 * `PLAUSIBLE_DOMAIN` (+ `PLAUSIBLE_SCRIPT_URL` for a self-hosted one) or PostHog with `POSTHOG_KEY`
 * (+ `POSTHOG_HOST`). Without them the page loads no third-party script at all.
 */
export async function Analytics() {
  await connection();
  const plausible = process.env.PLAUSIBLE_DOMAIN;
  const posthogKey = process.env.POSTHOG_KEY;
  if (plausible) {
    return (
      <script
        defer
        data-domain={plausible}
        src={process.env.PLAUSIBLE_SCRIPT_URL ?? 'https://plausible.io/js/script.js'}
      />
    );
  }
  if (posthogKey) {
    const host = (process.env.POSTHOG_HOST ?? 'https://us.i.posthog.com').replace(/\/+$/, '');
    const loader = `(function(){var s=document.createElement('script');s.async=true;s.src=${JSON.stringify(
      `${host}/static/array.js`,
    )};s.onload=function(){window.posthog&&window.posthog.init(${JSON.stringify(posthogKey)},{api_host:${JSON.stringify(
      host,
    )},person_profiles:'identified_only'})};document.head.appendChild(s)})();`;
    // biome-ignore lint/security/noDangerouslySetInnerHtml: a fixed loader; the only inputs are JSON-encoded env values
    return <script dangerouslySetInnerHTML={{ __html: loader }} />;
  }
  return null;
}
