// Who is the client? The production server sets X-Forwarded-For itself before Next.js sees the request:
// the platform API believes this app's X-Forwarded-For (rate limits and sessions key on it), so a header a
// client made up must never get through. Only the peers listed in WEB_TRUSTED_PROXIES (a load balancer in
// front) may tell us the client address; the right-most address they did not add is the client.
import { BlockList, isIP } from 'node:net';

const normalize = (address) => (address ?? '').trim().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');

/** `WEB_TRUSTED_PROXIES`: comma-separated addresses and CIDR ranges (`10.0.0.5`, `172.28.0.0/24`, `fd00::/8`). */
export function trustedProxies(list) {
  const blocks = new BlockList();
  for (const entry of (list ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [address, bits] = entry.split('/');
    const ip = normalize(address);
    const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (isIP(ip) === 0) throw new Error(`WEB_TRUSTED_PROXIES: ${entry} is not an address or CIDR range`);
    if (bits === undefined) blocks.addAddress(ip, family);
    else blocks.addSubnet(ip, Number(bits), family);
  }
  return { has: (address) => isIP(address) !== 0 && blocks.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4') };
}

/** The client address of a request from `peer` carrying `forwardedFor` (the X-Forwarded-For value, if any). */
export function clientAddress(peer, forwardedFor, trusted) {
  let client = normalize(peer) || '127.0.0.1';
  if (!trusted.has(client) || !forwardedFor) return client;
  const hops = forwardedFor
    .split(',')
    .map((s) => normalize(s))
    .filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i];
    if (isIP(hop) === 0) break;
    client = hop;
    if (!trusted.has(hop)) break;
  }
  return client;
}

/** Rewrites the forwarding headers of an incoming Node request in place (before Next.js reads them). */
export function setForwardedHeaders(req, trusted) {
  const peer = normalize(req.socket?.remoteAddress);
  const fromProxy = trusted.has(peer);
  const forwarded = req.headers['x-forwarded-for'];
  req.headers['x-forwarded-for'] = clientAddress(
    peer,
    Array.isArray(forwarded) ? forwarded.join(',') : forwarded,
    trusted,
  );
  if (!fromProxy) {
    // Host and scheme as this server saw them (Next.js fills them in from the connection).
    delete req.headers['x-forwarded-host'];
    delete req.headers['x-forwarded-proto'];
    delete req.headers['x-forwarded-port'];
  }
}
