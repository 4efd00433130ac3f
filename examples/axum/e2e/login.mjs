// End-to-end run of the axum example's login page in headless Chromium.
//
//   node login.mjs <base_url>        e.g. node login.mjs http://localhost:3000
//
// Protocol with the caller (a cargo test that started the server), one line per message:
//   stdout  NEED_EMAIL_CODE <email>   the caller answers with the emailed code on stdin
//   stdout  E2E OK                    everything passed (exit 0)
//   stdout  E2E FAILED: <message>     something failed (exit 1; details on stderr)
// Progress goes to stderr, prefixed "e2e:". With $E2E_ARTIFACTS set, a failure leaves
// fail.png (screenshot) and fail.html (the DOM) there.
//
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_ARTIFACTS, E2E_TIMEOUT_MS (default 90000).

import { chromium } from "playwright-core";
import { randomBytes } from "node:crypto";
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

// ------------------------------------------------------------------ page helpers

async function visible(id, timeout = STEP_MS) {
  await page.locator("#" + id).waitFor({ state: "visible", timeout });
}

/** Waits until the view `id` shows; fails early with the page's error message if one shows. */
async function waitView(id, timeout = STEP_MS) {
  const handle = await page.waitForFunction(
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

async function text(id) {
  return ((await page.locator("#" + id).textContent()) || "").trim();
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

async function expectAccount(email) {
  await waitView("view-account");
  const shown = await text("account-email");
  if (shown !== email) throw new Error(`account page shows email "${shown}", expected "${email}"`);
  log(`account page: ${shown}; amr: ${await text("account-amr")}`);
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
  const token = await page.evaluate(() => Object.keys(localStorage).filter((k) => /token/i.test(k)).length);
  if (token !== 0) throw new Error("tokens are still stored after signing out");
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
  page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") log(`console.${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => log("page error:", err.message));
  page.on("dialog", (dialog) => {
    log("unexpected dialog:", dialog.message());
    dialog.dismiss().catch(() => {});
  });

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
  //    must neither sign in by itself nor get in the way).
  await page.fill("#email", email);
  await page.click("#btn-email-code");
  await waitView("view-code");
  out(`NEED_EMAIL_CODE ${email}`);
  const code = await withTimeout(readLine(), STEP_MS, "reading the emailed code from stdin");
  if (!code) throw new Error("the caller sent an empty code");
  log("got the code from the caller");
  await page.fill("#code", code);
  await page.click("#btn-code-verify");
  await expectAccount(email);
  log("signed in with the emailed code");
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
