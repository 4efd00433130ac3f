// End-to-end run of the login page's attack-protection paths in headless Chromium.
//
//   node protection.mjs <base_url>
//
// The server runs the built-in proof of work. Account ana@example.com has the password
// "correct horse battery staple"; bob@example.com has "password123", which is on the
// common-password list. The run: three wrong passwords for ana, then the right one: the
// server answers 428 bot_check_required and the page must solve the proof-of-work
// challenge by itself and sign in. Sign out. Bob signs in with his breached password: the
// page must ask for a new one and sign him in with it. Then the lockout notice's link
// (NEED_UNBLOCK_LINK: the caller answers with the URL mailed to ana) opens /unblock, and
// "It was me" lifts the lockout.
//
// Protocol: stdout NEED_UNBLOCK_LINK, answered on stdin; "E2E OK" or "E2E FAILED: <why>".
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (default 90000).

import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS) || 90_000;
const STEP_MS = 20_000;
const log = (...args) => console.error("e2e:", ...args);
const out = (line) => process.stdout.write(line + "\n");
const base = (process.argv[2] || "").replace(/\/+$/, "");
const stdinLines = createInterface({ input: process.stdin, terminal: false })[Symbol.asyncIterator]();

let browser;
setTimeout(() => {
  out("E2E FAILED: the whole run took too long");
  process.exit(1);
}, TIMEOUT_MS);

async function visible(page, id) {
  await page.locator("#" + id).waitFor({ state: "visible", timeout: STEP_MS });
}

async function signIn(page, email, password) {
  await page.fill("#email", email);
  await page.fill("#password", password);
  await page.click("#btn-password-login");
}

async function statusText(page) {
  return ((await page.locator("#status").textContent()) || "").trim();
}

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  const page = await (await browser.newContext()).newPage();
  await page.goto(base + "/");
  await visible(page, "view-signin");

  for (let i = 0; i < 3; i++) {
    await signIn(page, "ana@example.com", "not the password at all, sorry");
    await page.waitForFunction(() => /invalid credentials/i.test(document.getElementById("status").textContent || ""), null, { timeout: STEP_MS });
    await page.evaluate(() => { document.getElementById("status").textContent = ""; });
  }
  log("three wrong passwords refused");
  const started = Date.now();
  await signIn(page, "ana@example.com", "correct horse battery staple");
  await visible(page, "view-account");
  log(`the page solved the bot check and signed in (${Date.now() - started} ms)`);
  await page.click("#btn-logout");
  await visible(page, "view-signin");

  await signIn(page, "bob@example.com", "password123");
  await visible(page, "view-password-change");
  if (!/breach/i.test(await statusText(page))) throw new Error(`no breach message: ${await statusText(page)}`);
  await page.fill("#new-password", "a far better passphrase for bob");
  await page.click("#btn-password-change");
  await visible(page, "view-account");
  log("the breached password was replaced and bob signed in");
  await page.click("#btn-logout");
  await visible(page, "view-signin");

  out("NEED_UNBLOCK_LINK");
  const { value: link } = await stdinLines.next();
  const other = await (await browser.newContext()).newPage();
  await other.goto(link.trim());
  await visible(other, "view-unblock");
  if (new URL(other.url()).search !== "") throw new Error("the token stayed in the address bar");
  await other.click("#btn-unblock-me");
  await other.waitForFunction(() => /may sign in again/i.test(document.getElementById("status").textContent || ""), null, { timeout: STEP_MS });
  log("the unblock link lifted the lockout");
  out("E2E OK");
}

main()
  .then(async () => {
    await browser.close();
    process.exit(0);
  })
  .catch(async (err) => {
    console.error("e2e: FAILED:", err && err.stack);
    out(`E2E FAILED: ${(err && err.message) || err}`);
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  });
