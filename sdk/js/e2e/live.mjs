// The SDK against a running portcullis server, from Node.js (bearer mode).
//
//   node e2e/live.mjs <base_url>
//
// Protocol with the caller (a cargo test that started the server), one line per message:
//   stdout  NEED_EMAIL_CODE <email>   the caller answers with the newest emailed code
//   stdout  E2E OK                    everything passed (exit 0)
//   stdout  E2E FAILED: <message>     something failed (exit 1)
// Progress goes to stderr, prefixed "sdk:".

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createInterface } from "node:readline";
import { PortcullisError, createClient } from "../portcullis.js";

const base = (process.argv[2] || "").replace(/\/+$/, "");
const log = (...args) => console.error("sdk:", ...args);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function emailCode(email) {
  process.stdout.write(`NEED_EMAIL_CODE ${email}\n`);
  const { value } = await lines.next();
  return value.trim();
}

/** RFC 6238 with SHA-1, 30 s steps, 6 digits, for the step `at` (Unix seconds). */
function totp(secretBase32, at) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secretBase32.replace(/=+$/, "").toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return code.toString().padStart(6, "0");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends a code, waiting out the server's send cooldown when it says so (typed). */
async function sendCode(client, email) {
  try {
    return await client.emailCode.send(email);
  } catch (err) {
    if (!(err instanceof PortcullisError) || err.code !== "rate_limited") throw err;
    assert.equal(err.status, 429);
    assert.ok(err.retryAfter >= 1, `Retry-After: ${err.retryAfter}`);
    await sleep(err.retryAfter * 1000 + 100);
    return client.emailCode.send(email);
  }
}

async function main() {
  let signedOutCalls = 0;
  const auth = createClient({ baseUrl: base, onSignedOut: () => signedOutCalls++ });
  assert.equal(auth.mode, "bearer");
  const email = "sdk@example.com";

  log("email code: a wrong code is a typed refusal");
  const sent = await auth.emailCode.send(email);
  assert.match(sent.requestId, /^[0-9a-f-]{36}$/);
  await assert.rejects(auth.emailCode.verify(sent.requestId, "000000"), (err) =>
    err instanceof PortcullisError && err.status === 401 && err.code === "invalid_credentials");
  const code = await emailCode(email);
  const result = await auth.emailCode.verify(sent.requestId, code);
  assert.equal(result.signedIn, true);
  assert.ok(auth.signedIn());
  const me = await auth.status();
  assert.equal(me.user_id, result.userId);

  log("an access token refused by the server: one refresh, one retry");
  const storage = new Map();
  const shared = {
    get: (k) => storage.get(k) ?? null,
    set: (k, v) => void storage.set(k, v),
    remove: (k) => void storage.delete(k),
  };
  const tab = createClient({ baseUrl: base, storage: shared, onSignedOut: () => signedOutCalls++ });
  const again = await sendCode(tab, email);
  const signed = await tab.emailCode.verify(again.requestId, await emailCode(email));
  assert.equal(signed.signedIn, true);
  const firstRefresh = shared.get("refresh");
  shared.set("access", "not-a-token");
  const status = await tab.status();
  assert.equal(status.user_id, me.user_id);
  assert.notEqual(shared.get("refresh"), firstRefresh, "rotated");

  log("concurrent refreshes of one client rotate once");
  const before = shared.get("refresh");
  await Promise.all([tab.refresh(), tab.refresh(), tab.refresh()]);
  const after = shared.get("refresh");
  assert.notEqual(after, before);
  // Were it rotated twice, the second use of `before` would have ended the session.
  assert.equal((await tab.status()).user_id, me.user_id);

  log("an authenticator app, then the MFA step with a backup code");
  const enrolment = await auth.mfa.enrollTotp();
  const secret = enrolment.secret;
  assert.match(secret, /^[A-Z2-7]+=*$/);
  const confirmed = await auth.mfa.confirmTotp(totp(secret, Date.now() / 1000));
  const backup = confirmed.backup_codes[0];
  assert.equal(typeof backup, "string");
  const factors = await auth.mfa.authenticators();
  assert.ok(JSON.stringify(factors).includes("totp"));
  await auth.signOut();
  assert.equal(auth.signedIn(), false);
  const third = await sendCode(auth, email);
  const step = await auth.emailCode.verify(third.requestId, await emailCode(email));
  assert.equal(step.signedIn, false);
  assert.equal(step.mfaRequired, true);
  assert.ok(step.methods.includes("backup_code"), JSON.stringify(step));
  await assert.rejects(auth.mfa.verify(step.mfaToken, { code: "AAAA-BBBB", method: "backup_code" }), (err) =>
    err instanceof PortcullisError && err.status === 401);
  const done = await auth.mfa.verify(step.mfaToken, { code: backup, method: "backup_code" });
  assert.equal(done.signedIn, true);
  const amr = (await auth.status()).amr;
  assert.ok(amr.includes("mfa"), JSON.stringify(amr));

  log("a revoked session: the next call ends it here too");
  const sessions = await auth.get("/auth/sessions");
  const other = sessions.items.find((s) => !s.current);
  assert.ok(other, "the tab's session is listed");
  await auth.delete(`/auth/sessions/${other.id}`);
  await assert.rejects(tab.status(), (err) => err instanceof PortcullisError && err.status === 401);
  assert.equal(tab.signedIn(), false, "the tab dropped its tokens");
  assert.equal(signedOutCalls, 1, "and said so");

  log("sign-out");
  await auth.signOut();
  await assert.rejects(auth.status(), (err) => err instanceof PortcullisError && err.status === 401);
}

main().then(
  () => {
    process.stdout.write("E2E OK\n");
    process.exit(0);
  },
  (err) => {
    console.error(err);
    process.stdout.write(`E2E FAILED: ${err && err.message}\n`);
    process.exit(1);
  },
);
