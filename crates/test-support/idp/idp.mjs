// A real OpenID provider (oidc-provider, a certified implementation) on loopback for the
// SSO tests, started by portcullis-test-support's `Idp`. Usage:
//
//   node idp.mjs '<json config>'   (or a path to a JSON file, or no argument: JSON on stdin)
//
// It listens on 127.0.0.1 on an ephemeral port and prints exactly one line to stdout,
// `READY <port>`, once it accepts requests; everything else goes to stderr. The config
// schema is in the comment on `readConfig` below.
//
// Logins need no browser when the authorization request names a known account in
// `login_hint`: that account is signed in and consent is granted for the requested scopes.
// Without one, oidc-provider's own development login page asks for a login name. Consent is
// always granted: the relying parties here are the tests' own.
//
// Test controls, under the issuer's path and answered to loopback peers only:
//   POST {issuer}/__test/rotate    new signing keys (new kids) replace the old ones and the
//                                  JWKS; answers {"kids": [...]}
//   GET  {issuer}/__test/stats     {"token": n, "jwks": n}: requests to those endpoints
//   POST {issuer}/__test/accounts  {"sub": "...", "claims": {...}} inserts or replaces an
//                                  account; answers 204

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider from 'oidc-provider';

// stdout carries the READY line alone: oidc-provider's notices (console.info) go to stderr.
console.log = console.error;
console.info = console.error;

// {
//   "clients": [ oidc-provider client metadata: client_id, client_secret, redirect_uris,
//                token_endpoint_auth_method, id_token_signed_response_alg, ... ],  default []
//   "accounts": { "<sub>": { claims: email, email_verified (any JSON, passed verbatim),
//                 name, groups, hd, ... and amr (array, sent as the ID token's amr) } },
//                                                                        default {}
//   "alg": [ signing algorithms, one generated key each: RS256 RS384 RS512 PS256 PS384
//            PS512 ES256 ES384 ES512 EdDSA Ed25519; HS256 HS384 HS512 enable signing
//            with the client secret ],                                  default ["RS256", "ES256"]
//   "iss_in_response": RFC 9207 `iss` in authorization responses,       default true
//   "issuer_path": a path after http://127.0.0.1:<port>, e.g. "/tenant-a", default ""
//   "claims": { "<scope>": [claim names] }, merged over the default mapping below
// }
function readConfig() {
  const arg = process.argv[2];
  let text;
  if (arg === undefined || arg === '-') {
    text = fs.readFileSync(0, 'utf8');
  } else if (arg.trimStart().startsWith('{')) {
    text = arg;
  } else {
    text = fs.readFileSync(arg, 'utf8');
  }
  const config = JSON.parse(text);
  const path = config.issuer_path ?? '';
  if (typeof path !== 'string' || (path !== '' && (!path.startsWith('/') || path.endsWith('/')))) {
    throw new Error(`issuer_path must be empty or start with "/" and not end with one: ${JSON.stringify(path)}`);
  }
  return {
    clients: config.clients ?? [],
    accounts: new Map(Object.entries(config.accounts ?? {})),
    algs: config.alg ?? ['RS256', 'ES256'],
    issInResponse: config.iss_in_response ?? true,
    issuerPath: path,
    claims: config.claims ?? {},
  };
}

// Claims on the ID token by scope (conformIdTokenClaims is off, so they land there, not
// only at the userinfo endpoint). `hd` comes with every sign-in, as Google sends it, and so
// does `amr` when the account has one.
const DEFAULT_CLAIMS = {
  openid: ['sub', 'hd', 'amr'],
  email: ['email', 'email_verified'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username', 'picture', 'locale'],
  groups: ['groups'],
};

function keyFor(alg) {
  switch (alg) {
    case 'RS256': case 'RS384': case 'RS512': case 'PS256': case 'PS384': case 'PS512':
      return crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    case 'ES256':
      return crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'ES384':
      return crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    case 'ES512':
      return crypto.generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
    case 'EdDSA': case 'Ed25519':
      return crypto.generateKeyPairSync('ed25519').privateKey;
    default:
      throw new Error(`alg ${alg} is not supported: RS*, PS*, ES256/384/512, EdDSA, Ed25519 or HS*`);
  }
}

let generation = 0;

// One fresh private JWK per asymmetric algorithm, each with a kid never used before.
function generateJwks(algs) {
  generation += 1;
  const keys = algs.filter((alg) => !alg.startsWith('HS')).map((alg) => ({
    ...keyFor(alg).export({ format: 'jwk' }),
    alg,
    use: 'sig',
    kid: `${alg.toLowerCase()}-${generation}-${crypto.randomBytes(6).toString('base64url')}`,
  }));
  return { keys };
}

function isLoopback(address) {
  return address === '::1' || /^(::ffff:)?127\./.test(address ?? '');
}

const config = readConfig();
// Cookies signed with one set of keys for the life of the process, so that logins in
// flight survive a key rotation (which builds a new Provider on the same storage).
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];
const stats = { token: 0, jwks: 0 };

function findAccount(ctx, sub) {
  const stored = config.accounts.get(sub);
  if (!stored) return undefined;
  const { amr, ...claims } = stored;
  return {
    accountId: sub,
    claims: () => ({ ...claims, sub }),
  };
}

// Signs the hinted account in and grants consent, without a page, when it can: on the
// interaction URL, for a login prompt whose login_hint names a known account, or for a
// consent prompt (after the development login page, or a session already there).
async function finishWithoutPage(provider, ctx, next) {
  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch {
    return next();
  }
  const { prompt, params, session, grantId } = details;
  const hint = typeof params.login_hint === 'string' && config.accounts.has(params.login_hint)
    ? params.login_hint
    : undefined;
  const result = {};
  let accountId;
  if (prompt.name === 'login' && hint) {
    accountId = hint;
    const { amr } = config.accounts.get(hint);
    result.login = { accountId, ...(Array.isArray(amr) ? { amr } : {}) };
  } else if (prompt.name === 'consent' && session?.accountId) {
    ({ accountId } = session);
  } else {
    return next();
  }
  const existing = !result.login && grantId ? await provider.Grant.find(grantId) : undefined;
  const grant = existing ?? new provider.Grant({ accountId, clientId: params.client_id });
  if (typeof params.scope === 'string') grant.addOIDCScope(params.scope);
  result.consent = { grantId: await grant.save() };
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: true,
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
  return undefined;
}

// RFC 9207 can't be switched off in oidc-provider 9: with iss_in_response false the `iss`
// parameter is taken off the redirect to the client and discovery stops announcing it.
function stripIss(location) {
  let url;
  try {
    url = new URL(location);
  } catch {
    return location; // a relative redirect inside the provider
  }
  url.searchParams.delete('iss');
  if (url.hash) {
    const fragment = new URLSearchParams(url.hash.slice(1));
    fragment.delete('iss');
    url.hash = fragment.toString();
  }
  return url.href;
}

function buildProvider(issuer) {
  const claims = { ...DEFAULT_CLAIMS, ...config.claims };
  const idTokenAlgs = [...new Set(config.algs)];
  const jwks = generateJwks(config.algs);
  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks,
    findAccount,
    claims,
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    cookies: { keys: cookieKeys },
    features: {
      devInteractions: { enabled: true },
    },
    enabledJWA: {
      idTokenSigningAlgValues: idTokenAlgs,
      userinfoSigningAlgValues: idTokenAlgs,
    },
  });
  provider.kids = jwks.keys.map((key) => key.kid);
  provider.on('server_error', (ctx, err) => console.error('idp: server_error', err));
  provider.on('authorization.error', (ctx, err) => console.error(`idp: authorization.error ${err.error}: ${err.error_description}`));
  provider.on('grant.error', (ctx, err) => console.error(`idp: grant.error ${err.error}: ${err.error_description}`));
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && /^\/interaction\/[^/]+$/.test(ctx.path)) {
      return finishWithoutPage(provider, ctx, next);
    }
    await next();
    if (config.issInResponse) return undefined;
    if (ctx.oidc?.route === 'discovery' && ctx.body && typeof ctx.body === 'object') {
      ctx.body.authorization_response_iss_parameter_supported = false;
    }
    const location = ctx.response.get('Location');
    if (location) ctx.set('Location', stripIss(location));
    return undefined;
  });
  return provider;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body === undefined ? undefined : JSON.stringify(body));
}

async function testControl(req, res, path) {
  if (!isLoopback(req.socket.remoteAddress)) return sendJson(res, 403, { error: 'loopback only' });
  if (req.method === 'POST' && path === '/__test/rotate') {
    // The new Provider shares the in-memory adapter's storage: sessions, codes and grants
    // carry over; only the keys change.
    current = buildProvider(issuer);
    handle = current.callback();
    return sendJson(res, 200, { kids: current.kids });
  }
  if (req.method === 'GET' && path === '/__test/stats') {
    return sendJson(res, 200, stats);
  }
  if (req.method === 'POST' && path === '/__test/accounts') {
    const { sub, claims } = JSON.parse(await readBody(req));
    if (typeof sub !== 'string' || !claims || typeof claims !== 'object') {
      return sendJson(res, 400, { error: 'expected {"sub": string, "claims": object}' });
    }
    config.accounts.set(sub, claims);
    res.writeHead(204);
    return res.end();
  }
  return sendJson(res, 404, { error: 'no such test control' });
}

let issuer;
let current;
let handle;

const server = http.createServer((req, res) => {
  const prefix = config.issuerPath;
  const url = req.url ?? '/';
  if (prefix && !(url === prefix || url.startsWith(`${prefix}/`) || url.startsWith(`${prefix}?`))) {
    return sendJson(res, 404, { error: `not under the issuer path ${prefix}` });
  }
  // Mounted as express mounts: oidc-provider derives its mount path from originalUrl.
  req.originalUrl = url;
  req.url = url.slice(prefix.length) || '/';
  const path = req.url.split('?')[0];
  if (path.startsWith('/__test/')) {
    return testControl(req, res, path).catch((err) => {
      console.error('idp: test control failed', err);
      if (!res.headersSent) sendJson(res, 500, { error: String(err) });
    });
  }
  if (path === '/token') stats.token += 1;
  if (path === '/jwks') stats.jwks += 1;
  return handle(req, res);
});

server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}${config.issuerPath}`;
  current = buildProvider(issuer);
  handle = current.callback();
  // oidc-provider checks static client metadata on first use: check it now, so that a bad
  // config fails the start rather than the test's first request.
  for (const client of config.clients) {
    try {
      if (!await current.Client.find(String(client.client_id))) throw new Error('not found');
    } catch (err) {
      console.error(`idp: client ${JSON.stringify(client.client_id)} is invalid: ${err.error_description ?? err.message}`);
      process.exit(1);
    }
  }
  process.stdout.write(`READY ${port}\n`);
});

// The Rust side keeps our stdin open for as long as it lives: when it goes, so do we.
if (process.env.PORTCULLIS_IDP_LIFELINE === 'stdin') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));
