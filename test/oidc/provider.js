// The OpenID provider that edgegate's OIDC tests and `make run` sign in against: the certified
// `oidc-provider` package, configured from a JSON file.
//
//   node test/oidc/provider.js CONFIG.json
//
// CONFIG: {
//   "issuer": "https://localhost:PORT",      the provider listens on PORT of 127.0.0.1 and ::1
//   "tls": {"cert": "server.pem", "key": "server.key"},   absent: plain HTTP (`make run`)
//   "clients": [ oidc-provider client metadata, ... ],
//   "users": [{"login", "password", "name", "email"}],  who can sign in
//   "admin_token": "..."                                absent: no /_test/ endpoints
// }
//
// Sign-in uses the package's own development interactions (its login and consent pages), with
// one addition in front of them: the password must be the user's (the package's dev pages accept
// any). Signing keys (RS256 and ES256) are made at start.
//
// Test-only endpoints, with `Authorization: Bearer <admin_token>`:
//   POST /_test/rotate          new RS256 and ES256 keys become the signing keys; the previous
//                               ones stay published (a provider's usual rotation). Answers {kids}.
//   POST /_test/tamper?mode=M   the next token response carries a spoiled ID token, to check that
//                               the relying party refuses it: wrong_nonce, expired,
//                               wrong_audience, wrong_issuer (re-signed with the provider's own
//                               key, so only the claim is wrong), bad_signature, alg_none,
//                               unknown_kid (signed by a key that is not published).
//   GET  /_test/stats           requests counted by path: {"/jwks": 2, ...}, and how the last
//                               token request authenticated: "last_token_request":
//                               {"authorization": "Basic" or null, "params": [names]}.
// Everything else is the package's.
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as querystring from 'node:querystring';
import { randomBytes } from 'node:crypto';

import { exportJWK, generateKeyPair, importJWK, SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = new URL(config.issuer);
const users = new Map((config.users || []).map((u) => [u.login, u]));
const cookieKeys = [randomBytes(32).toString('base64url')];
const stats = {};
let lastTokenRequest = null;
let keys = []; // private JWKs, signing keys first
let generation = 0;
let tamperMode = null;
let provider;
let handler;

function log(event, fields = {}) {
  const kv = Object.entries(fields).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
  process.stdout.write(`oidc-provider ${event} ${kv}\n`);
}

async function newKey(alg, kid) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

async function freshKeys() {
  generation += 1;
  return [await newKey('RS256', `rs-${generation}`), await newKey('ES256', `es-${generation}`)];
}

async function findAccount(ctx, id) {
  const user = users.get(id);
  if (!user) return undefined;
  return {
    accountId: id,
    async claims() {
      return { sub: id, name: user.name, email: user.email, email_verified: true };
    },
  };
}

// A spoiled copy of an ID token, for the relying party's negative tests.
async function tamper(token, mode) {
  const header = decodeProtectedHeader(token);
  const claims = decodeJwt(token);
  const now = Math.floor(Date.now() / 1000);
  const resign = async (c, key = keys.find((k) => k.kid === header.kid)) => new SignJWT(c)
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .sign(await importJWK(key, key.alg));
  switch (mode) {
    case 'wrong_nonce': return resign({ ...claims, nonce: `x${claims.nonce}` });
    case 'expired': return resign({ ...claims, iat: now - 7200, exp: now - 3600 });
    case 'wrong_audience': return resign({ ...claims, aud: 'someone-else', azp: undefined });
    case 'wrong_issuer': return resign({ ...claims, iss: 'https://evil.example' });
    case 'unknown_kid': return resign(claims, await newKey(header.alg, `ghost-${now}`));
    case 'bad_signature': {
      const [h, p, s] = token.split('.');
      const sig = Buffer.from(s, 'base64url');
      sig[sig.length >> 1] ^= 0x55;
      return `${h}.${p}.${sig.toString('base64url')}`;
    }
    case 'alg_none': {
      const h = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
      return `${h}.${token.split('.')[1]}.`;
    }
    default: throw new Error(`unknown tamper mode ${mode}`);
  }
}

async function buildProvider() {
  const p = new Provider(issuer.href.replace(/\/$/, ''), {
    clients: config.clients,
    findAccount,
    jwks: { keys },
    cookies: { keys: cookieKeys },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // The ID token from the token endpoint carries the profile claims the scopes allow, so the
    // relying party needs no userinfo call.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  });
  p.use(async (ctx, next) => {
    await next();
    if (tamperMode && ctx.path === '/token' && ctx.body && ctx.body.id_token) {
      const mode = tamperMode;
      tamperMode = null;
      ctx.body = { ...ctx.body, id_token: await tamper(ctx.body.id_token, mode) };
      log('tampered', { mode });
    }
  });
  p.on('server_error', (ctx, err) => log('server_error', { error: String(err) }));
  return p;
}

async function install() {
  provider = await buildProvider();
  handler = provider.callback();
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 65536) reject(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

function reply(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

async function admin(req, res, url) {
  if (!config.admin_token || req.headers.authorization !== `Bearer ${config.admin_token}`) {
    return reply(res, 401, { error: 'admin token required' });
  }
  if (req.method === 'POST' && url.pathname === '/_test/rotate') {
    keys = [...(await freshKeys()), ...keys.slice(0, 2)];
    await install();
    log('rotated', { kids: keys.map((k) => k.kid) });
    return reply(res, 200, { kids: keys.map((k) => k.kid) });
  }
  if (req.method === 'POST' && url.pathname === '/_test/tamper') {
    tamperMode = url.searchParams.get('mode');
    return reply(res, 200, { mode: tamperMode });
  }
  if (req.method === 'GET' && url.pathname === '/_test/stats') {
    return reply(res, 200, { ...stats, last_token_request: lastTokenRequest });
  }
  return reply(res, 404, { error: 'no such test endpoint' });
}

// What a token request carried, names only: the tests check how the client authenticated.
async function recordTokenRequest(req) {
  const form = querystring.parse(await readBody(req));
  req.body = form;
  const auth = req.headers.authorization;
  lastTokenRequest = { authorization: auth ? auth.split(' ')[0] : null, params: Object.keys(form).sort() };
}

// The package's dev login page takes any password; ours must be the user's.
async function checkPassword(req, res) {
  const form = querystring.parse(await readBody(req));
  req.body = form;
  if (form.prompt !== 'login') return true;
  const user = users.get(String(form.login));
  if (user && user.password === form.password) return true;
  log('login_refused', { login: String(form.login) });
  reply(res, 401, '<!DOCTYPE html><p>Wrong login or password. <a href="javascript:history.back()">Back</a></p>',
    'text/html');
  return false;
}

async function handle(req, res) {
  const url = new URL(req.url, issuer);
  stats[url.pathname] = (stats[url.pathname] || 0) + 1;
  try {
    if (url.pathname.startsWith('/_test/')) return await admin(req, res, url);
    if (req.method === 'POST' && url.pathname.startsWith('/interaction/')
        && !(await checkPassword(req, res))) return undefined;
    if (req.method === 'POST' && url.pathname === '/token') await recordTokenRequest(req);
    return handler(req, res);
  } catch (err) {
    log('error', { error: String(err) });
    return reply(res, 500, { error: 'server_error' });
  }
}

keys = await freshKeys();
await install();
const tls = config.tls
  ? { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) } : null;
const port = Number(issuer.port || (tls ? 443 : 80));
let listening = 0;
// Both loopback addresses: "localhost" may resolve to either.
for (const host of ['127.0.0.1', '::1']) {
  const server = tls ? https.createServer(tls, handle) : http.createServer(handle);
  server.on('error', (err) => {
    if (host === '::1') return; // no IPv6 on this machine
    log('listen_failed', { host, error: String(err) });
    process.exit(1);
  });
  server.listen(port, host, () => {
    listening += 1;
    if (listening === 1) log('listening', { issuer: issuer.href, port, kids: keys.map((k) => k.kid) });
  });
}
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
