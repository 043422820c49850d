import type { NextConfig } from 'next';

const config: NextConfig = {
  // The runtime's event schemas are TypeScript source in the workspace.
  transpilePackages: ['@agentsquads/runtime'],
  poweredByHeader: false,
  reactStrictMode: true,
  // `pnpm typecheck` checks this package (src, test and e2e); `start` builds faster without a second pass.
  typescript: { ignoreBuildErrors: true },
};

export default config;
