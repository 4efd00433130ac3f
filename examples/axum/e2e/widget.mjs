// The login widget on another site, in headless Chromium.
//
//   node widget.mjs <host_url>
//
// <host_url> serves a page of another origin (http://localhost:<another port>) that loads
// /sdk/widget.js from the portcullis server and shows <portcullis-login>. The run: the
// widget shows the organization's name; the person signs in by email code; nothing of the
// session lands in the page's storage; the page gets the access token; a passkey is made
// through the widget's client (a virtual authenticator); sign-out; sign-in with the
// passkey button; a call to the API from the page carries the CORS answer.
//
// Protocol with the caller, one line per message:
//   stdout  NEED_EMAIL_CODE <email>   the caller answers with the newest emailed code
//   stdout  E2E OK / E2E FAILED: <message>
// Progress goes to stderr, prefixed "widget:".

import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const STEP_MS = 20_000;
const log = (...args) => console.error("widget:", ...args);
const out = (line) => process.stdout.write(line + "\n");
const host = (process.argv[2] || "").replace(/\/+$/, "");
const lines = createInterface({ input: process.stdin, terminal: false })[Symbol.asyncIterator]();

let browser;
let page;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function emailCode(email) {
  out(`NEED_EMAIL_CODE ${email}`);
  const { value, done } = await lines.next();
  if (done) throw new Error("stdin closed before the caller answered");
  return value.trim();
}

async function signedInEvents() {
  return page.evaluate(() => window.signedIn.length);
}

async function until(what, predicate) {
  const started = Date.now();
  for (;;) {
    if (await predicate()) return;
    if (Date.now() - started > STEP_MS) {
      const message = await page.locator("portcullis-login .message").textContent().catch(() => "");
      throw new Error(`timed out: ${what} (the widget says: ${message})`);
    }
    await page.waitForTimeout(100);
  }
}

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
  });
  const context = await browser.newContext();
  page = await context.newPage();
  page.on("console", (msg) => msg.type() === "error" && log("console:", msg.text()));
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true },
  });

  await page.goto(`${host}/`);
  await page.waitForSelector("portcullis-login[data-ready]", { timeout: STEP_MS });
  const title = await page.locator("portcullis-login [part=title]").textContent();
  check(title === "Sign in to Shop & Co", `the widget's title: ${title}`);
  log("widget ready on", await page.evaluate(() => location.origin));

  // Email code.
  await page.fill("portcullis-login input[name=email]", "wes@example.com");
  await page.click("portcullis-login [part=send-code]");
  await page.locator("portcullis-login input[name=code]").waitFor({ state: "visible", timeout: STEP_MS });
  await page.fill("portcullis-login input[name=code]", await emailCode("wes@example.com"));
  await page.press("portcullis-login input[name=code]", "Enter");
  await until("signed in by email code", async () => (await signedInEvents()) === 1);
  const who = await page.locator("portcullis-login [part=who]").textContent();
  check(who === "Signed in as wes@example.com", `who: ${who}`);
  const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  check(!/eyJ|portcullis/.test(storage), `the session is in the page's storage: ${storage}`);
  const token = await page.evaluate(() => document.querySelector("portcullis-login").accessToken());
  check(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/.test(token || ""), "the page gets the access token");
  log("signed in by email code");

  // A passkey, made through the widget's client, then sign-out and sign-in with it.
  const made = await page.evaluate(async () =>
    document.querySelector("portcullis-login").client.passkeys.register({ name: "Shop key" }));
  check(made.signedIn === true, `passkey registration: ${JSON.stringify(made)}`);
  await page.evaluate(() => document.querySelector("portcullis-login").signOut());
  await until("signed out", async () => page.evaluate(() => window.signedOut === 1));
  check(await page.evaluate(() => document.querySelector("portcullis-login").accessToken()) === null, "a token after sign-out");
  await page.click("portcullis-login [part=passkey]");
  await until("signed in with the passkey", async () => (await signedInEvents()) === 2);
  log("signed in with the passkey");

  // The page calls the API itself with the token: the CORS answer names its origin.
  const call = await page.evaluate(async () => {
    const widget = document.querySelector("portcullis-login");
    const server = widget.getAttribute("server");
    const res = await fetch(`${server}/api/v1/auth/status`, { headers: { Authorization: `Bearer ${widget.accessToken()}` } });
    return { status: res.status, amr: (await res.json()).amr };
  });
  check(call.status === 200 && call.amr.includes("hwk"), `the page's own call: ${JSON.stringify(call)}`);
}

main().then(
  async () => {
    await browser.close().catch(() => {});
    out("E2E OK");
    process.exit(0);
  },
  async (err) => {
    console.error("widget: FAILED:", (err && err.stack) || err);
    const dir = process.env.E2E_ARTIFACTS;
    if (dir && page) {
      try {
        mkdirSync(dir, { recursive: true });
        await page.screenshot({ path: join(dir, "fail.png"), fullPage: true });
        writeFileSync(join(dir, "fail.html"), await page.content());
      } catch (_) {
        // best effort
      }
    }
    out(`E2E FAILED: ${String((err && err.message) || err).split("\n")[0]}`);
    await browser?.close().catch(() => {});
    process.exit(1);
  },
);
