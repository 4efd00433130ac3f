// End-to-end run of the axum example's login page in headless Chromium.
//
//   node login.mjs <base_url>        e.g. node login.mjs http://localhost:3000
//
// The run: sign up with a passkey (a virtual authenticator), sign out, sign in with the
// passkey, sign out, sign in by email code (account B: the passkey account's address was
// never proven, so the mailbox's owner gets an account of their own). On account B: enrol
// an authenticator app (the QR must load as an image; the code is computed here from the
// shown secret, RFC 6238), keep one of the ten backup codes shown, check that the
// authenticators list shows the app and that the login log has rows; sign out, sign in by
// email code again (a second NEED_EMAIL_CODE), answer the MFA step with the backup code
// (this step's TOTP code was spent on confirming) and check that the amr says "mfa".
// Then two magic links (same-device binding): sign out, ask for a link for a new address
// (account C), open it in a new tab of the same browser (shared localStorage: the stored
// poll token proves the browser, so no device code is asked for), confirm; the asking
// tab's poll signs it in. Sign out, ask for a link for another new address (account D),
// open it in a new browser context (no shared storage): the page says who asked (browser,
// place or address, time) and asks for the device code
// shown in the asking tab; a wrong code is refused with a message, the right one signs in,
// and the asking tab's poll signs it in too. So a run makes four accounts (A passkey,
// B email code, C and D magic link).
//
// Protocol with the caller (a cargo test that started the server), one line per message:
//   stdout  NEED_EMAIL_CODE <email>   the caller answers with the emailed code on stdin
//                                    (twice per run: the newest code for that email)
//   stdout  NEED_MAGIC_LINK <email>   the caller answers on stdin with the full URL of the
//                                    newest magic link emailed to that address, as in the
//                                    email (http://localhost:<port>/magic-link?token=...);
//                                    its origin must be <base_url>'s (twice per run, one
//                                    address each time, so no send cooldown applies)
// The second code is sent to the same address, so the server's clock must be past the send
// cooldown (limits.send_cooldown, 30 s) by then: on a real clock the run waits once when
// refused (Retry-After, up to 40 s); a caller on a stopped clock moves it on after answering.
// The TOTP code is computed for the server's clock (a pending factor's created_at), not ours.
//   stdout  SAW_REQUESTED_BY <text>   what the link's page in the other browser said about
//                                    who asked, for the caller to check (no answer)
//   stdout  E2E OK                    everything passed (exit 0)
//   stdout  E2E FAILED: <message>     something failed (exit 1; details on stderr)
// Progress goes to stderr, prefixed "e2e:". With $E2E_ARTIFACTS set, a failure leaves
// fail.png (screenshot) and fail.html (the DOM) there.
//
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_ARTIFACTS, E2E_TIMEOUT_MS (default 90000).

import { chromium } from "playwright-core";
import { createHmac, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS) || 90_000;
const STEP_MS = 20_000;

const log = (...args) => console.error("e2e:", ...args);
const out = (line) => process.stdout.write(line + "\n");

const base = (process.argv[2] || "").replace(/\/+$/, "");
if (!/^https?:\/\//.test(base)) {
  console.error("usage: node login.mjs <base_url>   (e.g. http://localhost:3000)");
  process.exit(2);
}

// stdin, read a line at a time when the caller has to answer.
const stdinLines = createInterface({ input: process.stdin, terminal: false })[Symbol.asyncIterator]();
async function readLine() {
  const { value, done } = await stdinLines.next();
  if (done) throw new Error("stdin closed before the caller answered");
  return value.trim();
}

let browser;
let page;
// Pages opened for a magic link (another tab, another context): saved on failure too.
const otherPages = new Map();
let finished = false;

async function fail(err) {
  if (finished) return;
  finished = true;
  const message = err && err.message ? err.message : String(err);
  console.error("e2e: FAILED:", (err && err.stack) || message);
  const dir = process.env.E2E_ARTIFACTS;
  if (dir && page) {
    try {
      mkdirSync(dir, { recursive: true });
      await withTimeout(page.screenshot({ path: join(dir, "fail.png"), fullPage: true }), 5000, "screenshot");
      writeFileSync(join(dir, "fail.html"), await withTimeout(page.content(), 5000, "page content"));
      for (const [name, other] of otherPages) {
        if (other.isClosed()) continue;
        await withTimeout(other.screenshot({ path: join(dir, `fail-${name}.png`), fullPage: true }), 5000, "screenshot");
        writeFileSync(join(dir, `fail-${name}.html`), await withTimeout(other.content(), 5000, "page content"));
      }
      log(`screenshot and DOM saved in ${dir}`);
    } catch (e) {
      log("could not save artifacts:", e.message);
    }
  }
  out(`E2E FAILED: ${message.split("\n")[0]}`);
  await closeBrowser();
  process.exit(1);
}

async function closeBrowser() {
  if (!browser) return;
  try {
    await withTimeout(browser.close(), 5000, "browser close");
  } catch (_) {
    // The process exits anyway; Chromium dies with its pipe.
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]);
}

const hardTimeout = setTimeout(() => fail(new Error(`the whole run took longer than ${TIMEOUT_MS} ms`)), TIMEOUT_MS);

// ------------------------------------------------------------------ TOTP (RFC 6238)

function base32Decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const clean = text.toUpperCase().replace(/[\s=-]/g, "");
  let bits = 0;
  let value = 0;
  const bytes = [];
  for (const ch of clean) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error(`the TOTP secret is not base32: "${text}"`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** HMAC-SHA1, 30 s step, 6 digits. */
function totp(secret, atMs = Date.now()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(atMs / 1000 / 30)));
  const mac = createHmac("sha1", base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, "0");
}

// ------------------------------------------------------------------ page helpers

async function visible(id, timeout = STEP_MS) {
  await page.locator("#" + id).waitFor({ state: "visible", timeout });
}

/** Waits until the view `id` shows; fails early with the page's error message if one shows. */
async function waitView(id, timeout = STEP_MS, p = page) {
  const handle = await p.waitForFunction(
    (viewId) => {
      const view = document.getElementById(viewId);
      const status = document.getElementById("status");
      if (view && !view.hidden) return { ok: true };
      if (status && !status.hidden && status.classList.contains("error")) {
        return { ok: false, message: status.textContent };
      }
      return false;
    },
    id,
    { timeout, polling: 100 },
  );
  const result = await handle.jsonValue();
  if (!result.ok) throw new Error(`waiting for #${id}, the page said: ${result.message}`);
}

async function text(id, p = page) {
  return ((await p.locator("#" + id).textContent()) || "").trim();
}

async function waitCount(selector, predicate, what, timeout = STEP_MS) {
  const started = Date.now();
  let n = 0;
  for (;;) {
    n = await page.locator(selector).count();
    if (predicate(n)) return n;
    if (Date.now() - started > timeout) throw new Error(`${what}: found ${n} (${selector})`);
    await page.waitForTimeout(100);
  }
}

async function expectAccount(email, p = page, timeout = STEP_MS) {
  await waitView("view-account", timeout, p);
  const shown = await text("account-email", p);
  if (shown !== email) throw new Error(`account page shows email "${shown}", expected "${email}"`);
  log(`account page${p === page ? "" : " (link's page)"}: ${shown}; amr: ${await text("account-amr", p)}`);
}

// Chromium's virtual authenticator answers a conditional (autofill) request at once, as if
// the person had picked the passkey, which would sign the page straight back in. So user
// presence is off while a sign-in page loads: its conditional request then waits, pending,
// as it would in front of a person (a request that arrived without presence keeps waiting
// even once presence is back on). Presence comes back on only after that request is
// pending, so the modal flows must abort it first: what this test exercises.
let cdp;
let authenticatorId;
let conditionalAvailable = false;

async function presence(enabled) {
  await cdp.send("WebAuthn.setAutomaticPresenceSimulation", { authenticatorId, enabled });
}

/** On the sign-in view: waits until the conditional request is pending, then allows presence. */
async function armForModal() {
  if (conditionalAvailable) {
    await page.waitForFunction(() => document.body.dataset.passkeyAutofill === "pending", null, { timeout: STEP_MS });
    // Let the request reach the authenticator in the browser process.
    await page.waitForTimeout(300);
  }
  await presence(true);
  await page.waitForTimeout(200);
  const view = await page.evaluate(() => [...document.querySelectorAll(".view")].find((v) => !v.hidden)?.id);
  if (view !== "view-signin") throw new Error(`the sign-in page changed to #${view} on its own`);
}

async function signOut() {
  await presence(false);
  await page.click("#btn-logout");
  await waitView("view-signin");
  const left = await page.evaluate(() => ({
    stored: Object.keys(localStorage).filter((k) => /token/i.test(k)).length,
    csrf: /portcullis-csrf=/.test(document.cookie),
  }));
  if (left.stored !== 0 || left.csrf) throw new Error(`the session is still held after signing out: ${JSON.stringify(left)}`);
  log("signed out");
}

// ------------------------------------------------------------------ the run

async function main() {
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  log(`launching ${executablePath}`);
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const context = await browser.newContext();
  page = await newPage(context, "");

  cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  ({ authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  }));
  log(`virtual authenticator ${authenticatorId}`);
  await presence(false);

  await page.goto(base + "/", { waitUntil: "load" });
  await waitView("view-signin");
  conditionalAvailable = await page.evaluate(async () =>
    typeof PublicKeyCredential !== "undefined" && typeof PublicKeyCredential.isConditionalMediationAvailable === "function"
      ? PublicKeyCredential.isConditionalMediationAvailable()
      : false);
  log(`sign-in page loaded; conditional mediation available: ${conditionalAvailable}`);

  // 1. A new account with a passkey (the conditional request from page load is pending).
  const email = `e2e-${randomBytes(6).toString("hex")}@example.com`;
  await page.fill("#email", email);
  await armForModal();
  await page.click("#btn-passkey-signup");
  // The account is made when the code emailed to the address comes back.
  await enterEmailedCode(email);
  await expectAccount(email);
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  if (credentials.length !== 1 || !credentials[0].isResidentCredential) {
    throw new Error(`the authenticator holds ${credentials.length} credential(s), expected one discoverable`);
  }
  log("signed up with a passkey");
  await signOut();

  // 2. Sign in with the passkey, no identifier (modal request; aborts the conditional one).
  await armForModal();
  await page.click("#btn-passkey-login");
  await expectAccount(email);
  const passkeys = await waitCount("#passkey-list > li", (n) => n === 1, "expected one passkey in the list");
  const rows = await waitCount("#login-log tbody tr", (n) => n > 0, "expected rows in the login log");
  const sessions = await waitCount("#session-list > li", (n) => n > 0, "expected sessions in the list");
  log(`signed in with the passkey; passkeys: ${passkeys}, login log rows: ${rows}, sessions: ${sessions}`);
  await signOut();

  // 3. Sign in with an emailed code (presence stays off: the pending conditional request
  //    must neither sign in by itself nor get in the way). The sign-up proved the
  //    address, so this is the same account.
  await emailCodeSignIn(email);
  await expectAccount(email);
  log("signed in with the emailed code");

  // 4. Enrol an authenticator app on the account; keep a backup code.
  await page.click("#btn-totp-enroll");
  await visible("totp-enroll-panel");
  await page.waitForFunction(() => {
    const img = document.getElementById("totp-qr");
    return img && !img.hidden && img.complete && img.naturalWidth > 0;
  }, null, { timeout: STEP_MS, polling: 100 });
  const qr = await page.evaluate(() => {
    const img = document.getElementById("totp-qr");
    return { src: img.getAttribute("src") || "", width: img.naturalWidth, height: img.naturalHeight };
  });
  if (!qr.src.startsWith("data:image/png;base64,")) throw new Error(`#totp-qr is not a PNG data URL: "${qr.src.slice(0, 40)}"`);
  const secret = (await text("totp-secret")).replace(/\s/g, "");
  if (!secret) throw new Error("no TOTP secret shown");
  // The code is for the server's time, not ours: under `cargo test` the engine runs on a
  // manual clock that only moves when the test moves it. The pending factor's created_at
  // is the server's "now" at enrolment (the server accepts one step either side).
  const serverNow = await page.evaluate(async () => {
    // The session is the page's HttpOnly cookie: a same-origin GET carries it. No token is
    // readable by the page.
    if (/eyJ/.test(document.cookie + JSON.stringify({ ...localStorage }))) return { error: "a token is readable by the page" };
    const res = await fetch("/api/v1/mfa/authenticators");
    if (!res.ok) return { error: `GET /api/v1/mfa/authenticators answered ${res.status}` };
    const { items } = await res.json();
    const pending = (items || []).filter((a) => a.type === "totp" && Number.isFinite(a.created_at));
    if (!pending.length) return { error: `no TOTP factor with created_at in ${JSON.stringify(items)}` };
    return { at: Math.max(...pending.map((a) => a.created_at)) };
  });
  if (serverNow.error) throw new Error(serverNow.error);
  log(`TOTP enrolment: QR ${qr.width}x${qr.height}, secret of ${secret.length} characters; ` +
    `server clock ${((serverNow.at - Date.now()) / 1000).toFixed(1)} s from ours`);
  await page.fill("#totp-code", totp(secret, serverNow.at));
  await page.click("#btn-totp-confirm");
  await visible("backup-codes-panel");
  const backupCodes = (await page.locator("#backup-codes > li").allTextContents()).map((c) => c.trim());
  if (backupCodes.length !== 10 || backupCodes.some((c) => !c)) {
    throw new Error(`expected 10 backup codes, got ${backupCodes.length}: ${JSON.stringify(backupCodes)}`);
  }
  const backupCode = backupCodes[0];
  log("TOTP enrolled; 10 backup codes shown");

  // 5. The authenticators list shows the app; the login log has rows.
  await waitCount("#authenticator-list > li[data-type=totp]", (n) => n === 1, "expected the authenticator app in the list");
  const authenticators = await page.locator("#authenticator-list > li").evaluateAll((lis) => lis.map((li) => li.dataset.type));
  const logRows = await waitCount("#login-log tbody tr", (n) => n > 0, "expected rows in the login log");
  log(`authenticators: ${authenticators.join(", ")}; login log rows: ${logRows}`);
  await page.click("#btn-backup-done");
  await signOut();

  // 6. Sign in by email code again: now the MFA step, answered with the backup code
  //    (the TOTP code of this step was spent on confirming).
  await emailCodeSignIn(email);
  await waitView("view-mfa");
  const backupAllowed = await page.locator("#mfa-backup-toggle").isVisible();
  if (!backupAllowed) throw new Error("the MFA step offers no backup code");
  await page.check("#mfa-use-backup");
  await page.fill("#mfa-code", backupCode);
  await page.click("#btn-mfa-verify");
  await expectAccount(email);
  const amr = await text("account-amr");
  if (!/\bmfa\b/.test(amr)) throw new Error(`after the MFA step the amr is "${amr}", expected it to contain "mfa"`);
  // The table still holds the rows of before signing out until the page reloads it.
  await page.waitForFunction(() => [...document.querySelectorAll("#login-log tbody tr")]
    .some((tr) => tr.cells[1].textContent === "sign_in" && tr.cells[2].textContent === "backup_code"),
  null, { timeout: STEP_MS, polling: 100 }).catch(() => {
    throw new Error("the login log shows no sign_in by backup_code");
  });
  const events = await page.locator("#login-log tbody tr").evaluateAll((trs) =>
    trs.map((tr) => `${tr.cells[1].textContent}/${tr.cells[2].textContent}`));
  log(`signed in with the emailed code and a backup code; login log: ${events.join(", ")}`);

  // 7. A magic link opened in another tab of the same browser (account C): the stored poll
  //    token proves the browser, so the link's page asks for no device code.
  await signOut();
  const emailC = `e2e-${randomBytes(6).toString("hex")}@example.com`;
  const shownC = await askMagicLink(emailC);
  const linkC = await magicLinkFor(emailC);
  const tab = await newPage(context, "tab");
  await tab.goto(linkC, { waitUntil: "load" });
  await magicConfirmReady(tab);
  if (await tab.locator("#magic-device-code").isVisible()) {
    throw new Error("the link's page in the asking browser asks for the device code");
  }
  await tab.click("#btn-magic-confirm");
  await expectAccount(emailC, tab);
  await expectAccount(emailC, page, STEP_MS + 5000); // the asking tab's poll (every 2 s)
  await expectMagicEntryCleared();
  log(`same-browser magic link: no device code asked (the asking tab showed ${shownC})`);
  await tab.close();
  otherPages.delete("tab");

  // 8. A magic link opened in another browser (account D): the page asks for the code
  //    shown in the asking tab; a wrong one is refused with a message.
  await signOut();
  const emailD = `e2e-${randomBytes(6).toString("hex")}@example.com`;
  const deviceCode = await askMagicLink(emailD);
  if (!deviceCode) throw new Error("the waiting view shows no device code (#magic-device-code-shown)");
  const linkD = await magicLinkFor(emailD);
  const elsewhere = await browser.newContext();
  const other = await newPage(elsewhere, "elsewhere");
  await other.goto(linkD, { waitUntil: "load" });
  await magicConfirmReady(other);
  // ML-11: before typing a code, the person sees who asked for the link.
  const asker = other.locator("#magic-requested-by");
  await asker.waitFor({ state: "visible", timeout: STEP_MS }).catch(() => {
    throw new Error("the link's page in another browser does not say who asked (#magic-requested-by)");
  });
  const askedBy = (await asker.textContent()).trim();
  if (!/^Requested from .+, at .+/.test(askedBy)) throw new Error(`#magic-requested-by says "${askedBy}"`);
  out(`SAW_REQUESTED_BY ${askedBy}`);
  log(`the link's page says: ${askedBy}`);
  await other.locator("#magic-device-code").waitFor({ state: "visible", timeout: STEP_MS }).catch(() => {
    throw new Error("the link's page in another browser does not ask for the device code (#magic-device-code)");
  });
  const wrong = deviceCode.slice(0, -1) + String((Number(deviceCode.slice(-1)) + 1) % 10);
  await other.fill("#magic-device-code", wrong);
  await other.click("#btn-magic-confirm");
  const refused = await other.waitForFunction(() => {
    const status = document.getElementById("status");
    return !status.hidden && status.classList.contains("error") && status.textContent.trim();
  }, null, { timeout: STEP_MS, polling: 100 }).then((h) => h.jsonValue()).catch(() => {
    throw new Error("a wrong device code showed no error message");
  });
  if (await other.locator("#view-magic-confirm").isHidden()) throw new Error("a wrong device code left the confirm view");
  log(`wrong device code refused: "${refused}"`);
  await other.fill("#magic-device-code", deviceCode);
  await other.click("#btn-magic-confirm");
  await expectAccount(emailD, other);
  await expectAccount(emailD, page, STEP_MS + 5000);
  await expectMagicEntryCleared();
  const leaked = await other.evaluate((key) => localStorage.getItem(key), MAGIC_KEY);
  if (leaked !== null) throw new Error("the other browser holds a magic link entry it never asked for");
  log("cross-device magic link: signed in with the device code");
  await withTimeout(elsewhere.close(), 5000, "closing the other browser context");
  otherPages.delete("elsewhere");
}

const MAGIC_KEY = "portcullis.magic";

/** A page with the run's logging; `name` (not the main page's "") names it in logs and artifacts. */
async function newPage(context, name) {
  const p = await context.newPage();
  const tag = name ? `[${name}] ` : "";
  p.setDefaultTimeout(STEP_MS);
  p.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") log(`${tag}console.${msg.type()}: ${msg.text()}`);
  });
  p.on("pageerror", (err) => log(`${tag}page error:`, err.message));
  p.on("dialog", (dialog) => {
    log(`${tag}unexpected dialog:`, dialog.message());
    dialog.dismiss().catch(() => {});
  });
  if (name) otherPages.set(name, p);
  return p;
}

/**
 * On the sign-in view: asks for a magic link for `email`; returns the device code the
 * waiting view shows ("" when none) after checking that the poll token is stored.
 */
async function askMagicLink(email) {
  await page.fill("#email", email);
  await page.click("#btn-magic-link");
  await waitView("view-magic-wait");
  const stored = await page.evaluate((key) => {
    try {
      return JSON.parse(localStorage.getItem(key) || "null");
    } catch (_) {
      return null;
    }
  }, MAGIC_KEY);
  if (!stored || !stored.request_id || !stored.poll_token || !(stored.expires_at > Date.now())) {
    throw new Error(`localStorage ${MAGIC_KEY} holds ${JSON.stringify(stored)}, expected the pending request`);
  }
  const shown = (await page.locator("#magic-device-code-shown").isVisible()) ? await text("magic-device-code-shown") : "";
  if (shown && !/^\w{4,12}$/.test(shown)) throw new Error(`the device code shown is "${shown}"`);
  log(`magic link asked for ${email}; device code shown: ${shown || "(none)"}`);
  return shown;
}

/** Asks the caller for the newest magic link emailed to `email`. */
async function magicLinkFor(email) {
  out(`NEED_MAGIC_LINK ${email}`);
  const link = await withTimeout(readLine(), STEP_MS, "reading the magic link from stdin");
  let url;
  try {
    url = new URL(link);
  } catch (_) {
    throw new Error(`the caller sent "${link}", not a link`);
  }
  if (url.origin !== new URL(base).origin) {
    throw new Error(`the magic link points at ${url.origin}, not the page's origin ${new URL(base).origin}`);
  }
  if (url.pathname !== "/magic-link" || !url.searchParams.get("token")) {
    throw new Error(`the magic link is not /magic-link?token=...: ${url.pathname}${url.search ? "?…" : ""}`);
  }
  log("got the magic link from the caller");
  return url.href;
}

/** The link's page: waits until its peek has answered (the confirm button is enabled). */
async function magicConfirmReady(p) {
  await waitView("view-magic-confirm", STEP_MS, p);
  await p.waitForFunction(() => {
    const status = document.getElementById("status");
    if (status && !status.hidden && status.classList.contains("error")) return true;
    return !document.getElementById("btn-magic-confirm").disabled;
  }, null, { timeout: STEP_MS, polling: 100 });
  const error = await p.evaluate(() => {
    const status = document.getElementById("status");
    return status && !status.hidden && status.classList.contains("error") ? status.textContent : null;
  });
  if (error) throw new Error(`the link's page said: ${error}`);
  if ((await p.evaluate(() => location.search)) !== "") throw new Error("the link's token stays in the address bar");
}

async function expectMagicEntryCleared() {
  const left = await page.evaluate((key) => localStorage.getItem(key), MAGIC_KEY);
  if (left !== null) throw new Error(`${MAGIC_KEY} is still stored after the poll ended: ${left}`);
}

/** Asks for an emailed code for `email` on the sign-in view and enters the caller's answer. */
async function emailCodeSignIn(email) {
  await page.fill("#email", email);
  for (let attempt = 0; ; attempt++) {
    await page.click("#btn-email-code");
    try {
      await waitView("view-code");
      break;
    } catch (err) {
      // One send per address every 30 s (limits.send_cooldown): on a real clock, wait it
      // out once. On a stopped clock the caller has to move it past the cooldown.
      const wait = /retry after (\d+) s/.exec(err.message);
      if (attempt > 0 || !wait || Number(wait[1]) > 40) {
        throw attempt > 0 ? new Error(`${err.message} (still, after waiting; is the server's clock stopped?)`) : err;
      }
      log(`the server asks to wait ${wait[1]} s before sending another code; waiting`);
      await page.waitForTimeout(Number(wait[1]) * 1000 + 500);
    }
  }
  await enterEmailedCode(email);
}

/** Asks the caller for the code emailed to `email` and types it into the code view. */
async function enterEmailedCode(email) {
  await waitView("view-code");
  out(`NEED_EMAIL_CODE ${email}`);
  const code = await withTimeout(readLine(), STEP_MS, "reading the emailed code from stdin");
  if (!code) throw new Error("the caller sent an empty code");
  log("got the code from the caller");
  await page.fill("#code", code);
  await page.click("#btn-code-verify");
}

main()
  .then(async () => {
    if (finished) return;
    finished = true;
    clearTimeout(hardTimeout);
    await closeBrowser();
    process.stdout.write("E2E OK\n", () => process.exit(0));
  })
  .catch(fail);
