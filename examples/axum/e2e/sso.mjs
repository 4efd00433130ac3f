// End-to-end run of single sign-on in headless Chromium: the IT-admin setup page, then the
// login page's "Continue with SSO", both through the OpenID provider's own login page.
//
//   node sso.mjs <base_url> <setup_link_url>
//
// The run: open the setup link; check the redirect URI shown; enter the provider's
// details (issuer, client id and secret from $SSO_ISSUER, $SSO_CLIENT_ID, $SSO_SECRET)
// and the domain acme.test; publish the shown TXT record (through the caller) and check
// it; run a test sign-in, typing the login "it" at the provider's page; activate. Then on
// the login page, in a new browser context (another person's browser, with no session at
// the provider): type alice@acme.test, "Continue with SSO", type the login "alice" at the
// provider's page, and land signed in as alice@acme.test.
//
// Protocol with the caller (a cargo test that started the server, the provider and a DNS
// server), one line per message:
//   stdout  PUBLISH <name> <value>   the caller publishes the TXT record and answers "ok"
//   stdout  E2E OK                   everything passed (exit 0)
//   stdout  E2E FAILED: <message>    something failed (exit 1; details on stderr)
// With $E2E_ARTIFACTS set, a failure leaves fail.png and fail.html there.
//
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_ARTIFACTS, E2E_TIMEOUT_MS (90000).

import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS) || 90_000;
const STEP_MS = 20_000;
const log = (...args) => console.error("e2e:", ...args);
const out = (line) => process.stdout.write(line + "\n");

const base = (process.argv[2] || "").replace(/\/+$/, "");
const setupLink = process.argv[3] || "";
const issuer = process.env.SSO_ISSUER || "";
if (!/^https?:\/\//.test(base) || !setupLink.startsWith(base + "/setup?token=") || !issuer) {
  console.error("usage: SSO_ISSUER=.. SSO_CLIENT_ID=.. SSO_SECRET=.. node sso.mjs <base_url> <setup_link_url>");
  process.exit(2);
}

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
  if (page) {
    const status = await withTimeout(page.locator("#status").textContent(), 3000, "status").catch(() => "");
    if (status) log(`the page said: ${status.trim()}`);
  }
  if (dir && page) {
    try {
      mkdirSync(dir, { recursive: true });
      await withTimeout(page.screenshot({ path: join(dir, "fail.png"), fullPage: true }), 5000, "screenshot");
      writeFileSync(join(dir, "fail.html"), await withTimeout(page.content(), 5000, "page content"));
    } catch (e) {
      log("could not save artifacts:", e.message);
    }
  }
  out(`E2E FAILED: ${message.split("\n")[0]}`);
  if (browser) await withTimeout(browser.close(), 5000, "browser close").catch(() => {});
  process.exit(1);
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

setTimeout(() => fail(new Error(`the whole run took longer than ${TIMEOUT_MS} ms`)), TIMEOUT_MS).unref();

async function textOf(id) {
  return (await page.locator("#" + id).textContent({ timeout: STEP_MS })).trim();
}

async function waitText(id, pattern) {
  await page.waitForFunction(
    ([id, source]) => new RegExp(source).test((document.getElementById(id) || {}).textContent || ""),
    [id, pattern.source],
    { timeout: STEP_MS },
  );
}

/** Signs `login` in on the provider's own page, which sends the browser back to us. */
async function providerLogin(login) {
  await page.waitForURL((url) => url.href.startsWith(issuer), { timeout: STEP_MS });
  log(`at the provider's page: ${page.url()}`);
  await page.locator('input[name="login"]').fill(login, { timeout: STEP_MS });
  const password = page.locator('input[name="password"]');
  if (await password.count()) await password.fill("any password");
  await page.locator('button[type="submit"]').first().click({ timeout: STEP_MS });
  log("signed in at the provider");
  await page.waitForURL((url) => url.href.startsWith(base), { timeout: STEP_MS });
  log(`back at ${new URL(page.url()).pathname}`);
}

async function run() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  const context = await browser.newContext();
  page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => log("page error:", e.message));

  log("the setup link");
  await page.goto(setupLink);
  await page.locator("#view-setup").waitFor({ state: "visible", timeout: STEP_MS });
  if (page.url() !== base + "/setup") throw new Error(`the token stayed in the address bar: ${page.url()}`);
  const redirect = await textOf("setup-redirect-uri");
  if (redirect !== base + "/api/v1/sso/callback") throw new Error(`redirect URI shown: ${redirect}`);

  log("the provider's details");
  await page.fill("#issuer", issuer);
  await page.fill("#client-id", process.env.SSO_CLIENT_ID || "portcullis");
  await page.fill("#client-secret", process.env.SSO_SECRET || "");
  await page.fill("#domain", "acme.test");
  await page.click("#btn-save-provider");
  await waitText("connection-state", /draft, not tested yet/);

  log("the domain proof");
  await waitText("txt-value", /portcullis-verify=/);
  out(`PUBLISH ${await textOf("txt-name")} ${await textOf("txt-value")}`);
  if ((await readLine()) !== "ok") throw new Error("the caller did not publish the record");
  await page.click("#btn-check-domain");
  await waitText("domain-state", /^verified$/);

  log("the test sign-in");
  await page.click("#btn-test");
  await providerLogin("it");
  await page.locator("#view-setup").waitFor({ state: "visible", timeout: STEP_MS });
  await waitText("status", /test sign-in passed/);
  await waitText("connection-state", /draft, tested/);
  await page.click("#btn-activate");
  await waitText("connection-state", /^active, tested$/);

  log("Continue with SSO on the login page, in another person's browser");
  page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => log("page error:", e.message));
  page.on("console", (m) => log("console:", m.text()));
  await page.goto(base + "/");
  await page.locator("#view-signin").waitFor({ state: "visible", timeout: STEP_MS });
  await page.fill("#email", "alice@acme.test");
  await page.click("#btn-sso");
  await providerLogin("alice");
  await page.locator("#view-account").waitFor({ state: "visible", timeout: STEP_MS });
  await waitText("account-email", /^alice@acme\.test$/);
  if (new URL(page.url()).search !== "") throw new Error(`the code stayed in the address bar: ${page.url()}`);

  finished = true;
  out("E2E OK");
  await withTimeout(browser.close(), 5000, "browser close").catch(() => {});
  // stdin stays open for the caller's answers: leave without waiting for it.
  process.exit(0);
}

run().catch(fail);
