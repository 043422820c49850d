import { proxyRequest } from '@/lib/proxy';
import { apiBase } from '@/lib/server-api';
import { siteUrl } from '@/lib/site';

export const dynamic = 'force-dynamic';

function handle(request: Request): Promise<Response> {
  return proxyRequest(request, { upstream: apiBase(), publicOrigin: new URL(siteUrl()).origin });
}

export {
  handle as DELETE,
  handle as GET,
  handle as HEAD,
  handle as OPTIONS,
  handle as PATCH,
  handle as POST,
  handle as PUT,
};
