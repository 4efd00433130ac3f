// A Node.js back end behind portcullis: it verifies the access tokens its pages send
// (signature from the server's JWKS, issuer, audience, expiry) with jose, the usual JWT
// library of Node.js, and calls the management API with an API credential.
//
//   node backend.mjs <portcullis_url> <access_token> <api_key> <org_id>
//
// Prints "E2E OK" when every check passes (the README's Node.js guide; run by
// crates/http-suite/tests/browser.rs).

import { createRemoteJWKSet, jwtVerify } from "jose";

const [server, token, apiKey, orgId] = process.argv.slice(2);

// One key set per process: jose caches the keys and refetches on an unknown `kid`, so a
// signing key rotated on the server is picked up by itself.
const jwks = createRemoteJWKSet(new URL(`${server}/.well-known/jwks.json`));

/** The claims of a valid access token; throws for anything else. */
export async function authenticate(accessToken) {
  const { payload } = await jwtVerify(accessToken, jwks, {
    issuer: server,
    audience: server,
    algorithms: ["EdDSA", "ES256"],
  });
  // An OpenID client's token (it names client_id) is for that client, not for this API.
  if (payload.client_id) throw new Error("not a first-party token");
  return payload;
}

/** Whether the token's holder may `permission` in their organization. */
export function allows(claims, permission) {
  const [resource] = permission.split(":");
  const held = claims.perms || [];
  return held.includes(permission) || held.includes(`${resource}:*`);
}

async function management(path) {
  const res = await fetch(`${server}/api/v1${path}`, { headers: { Authorization: `Bearer ${apiKey}` } });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${(await res.json()).error.code}`);
  return res.json();
}

async function main() {
  const claims = await authenticate(token);
  if (!claims.sub || claims.org !== orgId) throw new Error(`claims: ${JSON.stringify(claims)}`);
  if (!allows(claims, "invoices:read") || allows(claims, "invoices:write")) {
    throw new Error(`permissions: ${JSON.stringify(claims.perms)}`);
  }
  // A token changed by one character, or from another issuer, is refused.
  const [head, body, signature] = token.split(".");
  const flipped = signature[0] === "A" ? "B" : "A";
  for (const bad of [`${head}.${body}.${flipped}${signature.slice(1)}`, "not.a.token"]) {
    const refused = await authenticate(bad).then(() => false, () => true);
    if (!refused) throw new Error("a forged token passed");
  }
  const members = await management(`/organizations/${orgId}/members`);
  if (!members.items.some((m) => m.user.id === claims.sub)) throw new Error("the member list misses the user");
  const unauthenticated = await fetch(`${server}/api/v1/organizations/${orgId}/members`);
  if (unauthenticated.status !== 401) throw new Error(`without a credential: ${unauthenticated.status}`);
  console.log("E2E OK");
}

main().catch((err) => {
  console.error(err);
  console.log(`E2E FAILED: ${err.message}`);
  process.exit(1);
});
