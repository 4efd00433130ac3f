// A relying party built on openid-client (v6), driven over stdin/stdout by portcullis's OP
// tests. Usage:
//
//   node rp.mjs '<json config>'   (the protocol is in README.md beside this file)
//
// stdout carries the protocol alone, one JSON object per line: {"authorize": url}, then the
// final result. Everything else goes to stderr. The driver reads one line from stdin,
// {"callback": url}, after printing the authorization URL.
//
// openid-client checks the authorization response (state, RFC 9207 iss), the ID token's
// iss, aud, azp, exp, iat, nonce and alg. It does not check ID token signatures from the
// token endpoint unless told to (TLS stands in for them): enableNonRepudiationChecks makes
// it verify them against the discovered jwks_uri. It never checks at_hash in the code flow,
// so that one check is ours, below.

import * as crypto from 'node:crypto';
import * as readline from 'node:readline';

import * as client from 'openid-client';

const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'none'];
const TIMEOUT = 30; // seconds per HTTP request

class Failure extends Error {}

function log(...parts) {
  console.error('rp.mjs:', ...parts);
}

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function describe(err) {
  if (err instanceof client.ResponseBodyError) {
    return `${err.error}${err.error_description ? `: ${err.error_description}` : ''} (HTTP ${err.status})`;
  }
  if (err instanceof client.AuthorizationResponseError) {
    return `authorization error ${err.error}${err.error_description ? `: ${err.error_description}` : ''}`;
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const [challenge] = err.cause ?? [];
    return `WWW-Authenticate ${challenge?.scheme} ${JSON.stringify(challenge?.parameters ?? {})} (HTTP ${err.status})`;
  }
  let text = err?.message ?? String(err);
  if (err?.code) text += ` [${err.code}]`;
  const cause = err?.cause;
  if (cause instanceof Error) text += ` (cause: ${cause.message})`;
  else if (cause && typeof cause === 'object' && !(cause instanceof Response)) {
    try {
      text += ` (cause: ${JSON.stringify(cause)})`;
    } catch {
      // circular: leave it off
    }
  }
  return text;
}

// The OAuth error code of a refused token request, whichever way it came back.
function oauthErrorCode(err) {
  if (err instanceof client.ResponseBodyError) return err.error;
  if (err instanceof client.WWWAuthenticateChallengeError) {
    return err.cause?.find((c) => c.parameters?.error)?.parameters.error;
  }
  return undefined;
}

function readConfig(argv) {
  if (argv.length !== 1) throw new Failure("usage: node rp.mjs '<json config>'");
  const config = JSON.parse(argv[0]);
  if (!config || typeof config !== 'object' || Array.isArray(config)) {
    throw new Failure('config must be a JSON object');
  }
  for (const key of ['issuer', 'client_id', 'redirect_uri']) {
    if (typeof config[key] !== 'string' || !config[key]) {
      throw new Failure(`config.${key} must be a non-empty string`);
    }
  }
  config.auth_method ??= 'client_secret_basic';
  if (!AUTH_METHODS.includes(config.auth_method)) {
    throw new Failure(`config.auth_method must be one of ${AUTH_METHODS.join(', ')}`);
  }
  if (config.auth_method === 'none') {
    config.client_secret = null;
  } else if (typeof config.client_secret !== 'string' || !config.client_secret) {
    throw new Failure(`config.client_secret is required for ${config.auth_method}`);
  }
  config.scope ??= 'openid';
  config.id_token_alg ??= null;
  config.authorize_params ??= {};
  const extra = config.authorize_params;
  if (typeof extra !== 'object' || Array.isArray(extra)
      || !Object.values(extra).every((v) => typeof v === 'string')) {
    throw new Failure('config.authorize_params must be an object of strings');
  }
  return config;
}

function clientAuth(config) {
  switch (config.auth_method) {
    case 'client_secret_basic': return client.ClientSecretBasic(config.client_secret);
    case 'client_secret_post': return client.ClientSecretPost(config.client_secret);
    default: return client.None();
  }
}

// The one line the test writes after it has played the browser.
function readLine() {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin, terminal: false });
    let done = false;
    rl.once('line', (line) => {
      done = true;
      rl.close();
      resolve(line);
    });
    rl.once('close', () => {
      if (!done) resolve(undefined);
    });
  });
}

// OIDC Core 3.1.3.8 (and 3.2.2.9): at_hash is the left half of the hash of the access
// token, the hash being that of the ID token's alg; EdDSA (Ed25519) hashes with SHA-512.
function checkAtHash(idToken, accessToken) {
  const [protectedHeader] = idToken.split('.');
  const { alg } = JSON.parse(Buffer.from(protectedHeader, 'base64url').toString('utf8'));
  const claims = JSON.parse(Buffer.from(idToken.split('.')[1], 'base64url').toString('utf8'));
  if (claims.at_hash === undefined) return 'absent';
  let hash;
  if (/^(RS|PS|ES|HS)256$/.test(alg)) hash = 'sha256';
  else if (/^(RS|PS|ES|HS)384$/.test(alg)) hash = 'sha384';
  else if (/^(RS|PS|ES|HS)512$/.test(alg) || alg === 'EdDSA' || alg === 'Ed25519') hash = 'sha512';
  else throw new Failure(`no at_hash hash known for alg ${alg}`);
  const digest = crypto.createHash(hash).update(accessToken, 'ascii').digest();
  const expected = digest.subarray(0, digest.length / 2).toString('base64url');
  if (claims.at_hash !== expected) throw new Failure(`at_hash ${claims.at_hash} is not ${expected} (${hash})`);
  return 'valid';
}

async function run(config, out) {
  let stage = 'discovery';
  let tokenEndpoint;
  // authorizationCodeGrant checks the callback, redeems the code and checks the ID token in
  // one call: watching its requests tells which of those failed.
  async function watchingFetch(url, options) {
    const isToken = tokenEndpoint !== undefined && String(url) === tokenEndpoint;
    if (isToken && stage === 'callback') stage = 'token';
    const response = await fetch(url, options);
    if (isToken && stage === 'token' && response.status === 200) {
      log(`token response: HTTP ${response.status} content-type=${response.headers.get('content-type')} cache-control=${response.headers.get('cache-control')}`);
      stage = 'id_token';
    }
    return response;
  }
  try {
    const metadata = {
      redirect_uris: [config.redirect_uri],
      response_types: ['code'],
      token_endpoint_auth_method: config.auth_method,
      ...(config.client_secret ? { client_secret: config.client_secret } : {}),
      // The ID token must come signed with this alg (else with one that discovery lists).
      ...(config.id_token_alg ? { id_token_signed_response_alg: config.id_token_alg } : {}),
    };
    const configuration = await client.discovery(
      new URL(config.issuer),
      config.client_id,
      metadata,
      clientAuth(config),
      {
        timeout: TIMEOUT,
        [client.customFetch]: watchingFetch,
        execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
      },
    );
    const server = configuration.serverMetadata();
    if (server.issuer !== config.issuer) {
      // openid-client compares these as URLs (a trailing "/" passes), but it compares the ID
      // token iss and the RFC 9207 iss with the discovered issuer as strings.
      throw new Failure(`discovery issuer ${JSON.stringify(server.issuer)} is not ${JSON.stringify(config.issuer)}`);
    }
    for (const key of ['authorization_endpoint', 'token_endpoint', 'jwks_uri']) {
      if (typeof server[key] !== 'string') throw new Failure(`discovery has no ${key}`);
    }
    tokenEndpoint = server.token_endpoint;

    stage = 'authorize';
    const codeVerifier = client.randomPKCECodeVerifier();
    const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(configuration, {
      redirect_uri: config.redirect_uri,
      scope: config.scope,
      code_challenge: codeChallenge,
      code_challenge_method: 'S256',
      state,
      nonce,
      ...config.authorize_params,
    });
    emit({ authorize: url.href });

    stage = 'callback';
    const line = await readLine();
    if (line === undefined) throw new Failure('stdin closed before the callback line');
    const { callback } = JSON.parse(line);
    if (typeof callback !== 'string') throw new Failure('expected {"callback": "<url>"}');
    const callbackUrl = new URL(callback);
    // openid-client sends the callback URL, less its query, as the token request's
    // redirect_uri: it must be the registered one.
    if (`${callbackUrl.origin}${callbackUrl.pathname}` !== config.redirect_uri) {
      throw new Failure(`callback ${callbackUrl.origin}${callbackUrl.pathname} is not the redirect_uri ${config.redirect_uri}`);
    }

    // Checks the callback's state and iss (RFC 9207), then redeems the code and validates
    // the ID token (signature against jwks_uri, iss, aud, azp, exp, iat, nonce). The stage
    // moves on to token, then id_token, as watchingFetch sees the token request go out.
    const tokens = await client.authorizationCodeGrant(configuration, callbackUrl, {
      pkceCodeVerifier: codeVerifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
      // With max_age sent, auth_time must be there and recent enough.
      ...(config.authorize_params.max_age !== undefined
        ? { maxAge: Number(config.authorize_params.max_age) } : {}),
    });
    out.token_response_keys = Object.keys(tokens).sort();

    stage = 'id_token';
    const idClaims = tokens.claims();
    log(`ID token valid; at_hash ${checkAtHash(tokens.id_token, tokens.access_token)}`);
    out.id_token_claims = idClaims;

    let accessToken = tokens.access_token;
    let refreshToken = tokens.refresh_token;
    out.refreshed = false;
    out.refreshed_id_token_claims = null;
    if (refreshToken) {
      stage = 'refresh';
      const refreshed = await client.refreshTokenGrant(configuration, refreshToken);
      out.refreshed = true;
      accessToken = refreshed.access_token;
      if (refreshed.id_token) {
        stage = 'refreshed_id_token';
        // Validated by openid-client as above, less the nonce; OIDC Core 12.2 asks more.
        const claims = refreshed.claims();
        for (const name of ['iss', 'sub', 'aud', 'auth_time', 'nonce']) {
          if (claims[name] !== undefined
              && JSON.stringify(claims[name]) !== JSON.stringify(idClaims[name])) {
            throw new Failure(`refreshed ID token changes ${name}`);
          }
        }
        log(`refreshed ID token valid; at_hash ${checkAtHash(refreshed.id_token, accessToken)}`);
        out.refreshed_id_token_claims = claims;
      }
      refreshToken = refreshed.refresh_token ?? refreshToken;
    } else {
      log('no refresh token issued');
    }

    stage = 'userinfo';
    if (!server.userinfo_endpoint) throw new Failure('discovery has no userinfo_endpoint');
    // Also checks that the UserInfo sub is the ID token's (OIDC Core 5.3.4).
    out.userinfo = await client.fetchUserInfo(configuration, accessToken, idClaims.sub);

    stage = 'revoke';
    if (!server.revocation_endpoint) throw new Failure('discovery has no revocation_endpoint');
    const [revoked, hint] = refreshToken
      ? [refreshToken, 'refresh_token']
      : [accessToken, 'access_token'];
    await client.tokenRevocation(configuration, revoked, { token_type_hint: hint });
    out.revoked = true;
    out.revoked_token_type_hint = hint;

    stage = 'refresh_after_revoke';
    out.refresh_after_revoke_error = null;
    if (refreshToken) {
      let accepted = false;
      try {
        await client.refreshTokenGrant(configuration, refreshToken);
        accepted = true;
      } catch (err) {
        const code = oauthErrorCode(err);
        if (code === undefined) throw err;
        out.refresh_after_revoke_error = code;
        log(`refresh after revocation refused: ${describe(err)}`);
      }
      if (accepted) throw new Failure('the revoked refresh token was accepted');
    } else {
      // What the revoked access token now gets at UserInfo: for information only.
      const resp = await fetch(server.userinfo_endpoint, {
        headers: { authorization: `Bearer ${accessToken}` },
        signal: AbortSignal.timeout(TIMEOUT * 1000),
      });
      out.userinfo_after_revoke_status = resp.status;
    }
  } catch (err) {
    return { stage, message: describe(err) };
  }
  return undefined;
}

async function main() {
  let config;
  try {
    config = readConfig(process.argv.slice(2));
  } catch (err) {
    emit({ ok: false, error: err.message, stage: 'config' });
    return 2;
  }
  const out = { ok: true };
  const failed = await run(config, out);
  if (failed) {
    log(`failed at ${failed.stage}: ${failed.message}`);
    emit({ ok: false, error: failed.message, stage: failed.stage });
    return 1;
  }
  emit(out);
  return 0;
}

process.exitCode = await main();
// stdin may still be open (the test keeps it so): leave once stdout has drained.
process.stdout.write('', () => process.exit(process.exitCode));
