import { type NextRequest, NextResponse } from 'next/server';

/** Tells the dashboard layout which page was asked for, so sign-in can bring the user back to it. */
export function proxy(request: NextRequest) {
  const headers = new Headers(request.headers);
  headers.set('x-pathname', `${request.nextUrl.pathname}${request.nextUrl.search}`);
  return NextResponse.next({ request: { headers } });
}

export const config = { matcher: ['/dashboard', '/dashboard/:path*'] };
