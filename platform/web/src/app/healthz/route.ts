export const dynamic = 'force-dynamic';

/** Liveness for `start` and load balancers (the platform API has its own at /api/health). */
export function GET() {
  return Response.json({ status: 'ok', service: 'web' });
}
