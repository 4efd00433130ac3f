// The dashboard (/admin) in headless Chromium.
//
//   node admin.mjs <base_url>
//
// Acme's administrator (ann@acme.example) signs in to /admin?org=acme by email code,
// turns password sign-in off, creates a role "support" holding users:read, finds Max by search (his display name is
// markup, which must show as text and run nothing), gives him the role, blocks him, edits
// the email-code template and sees the live preview (with the sample code), sees a URL in
// the wording refused in the preview, saves it, filters the login log, and signs out.
// Bolt's administrator (bea@bolt.example) then signs in to /admin?org=bolt and sees none
// of it: no Max, no role "support", no Acme template; and Acme's routes refuse her
// session.
//
// Protocol with the caller (a cargo test that started the server and made the two
// organizations, their administrators and Max), one line per message:
//   stdout  NEED_EMAIL_CODE <email>   the caller answers with the newest emailed code
//   stdout  E2E OK                    everything passed (exit 0)
//   stdout  E2E FAILED: <message>     something failed (exit 1; details on stderr)
// Progress goes to stderr, prefixed "admin:". With $E2E_ARTIFACTS set, a failure leaves
// fail.png and fail.html there.

import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const STEP_MS = 20_000;
const log = (...args) => console.error("admin:", ...args);
const out = (line) => process.stdout.write(line + "\n");
const base = (process.argv[2] || "").replace(/\/+$/, "");
const lines = createInterface({ input: process.stdin, terminal: false })[Symbol.asyncIterator]();

let browser;
let page;
const violations = [];

async function emailCode(email) {
  out(`NEED_EMAIL_CODE ${email}`);
  const { value, done } = await lines.next();
  if (done) throw new Error("stdin closed before the caller answered");
  return value.trim();
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Waits for `selector` to show, failing early with the page's error status if one shows. */
async function shows(selector) {
  const handle = await page.waitForFunction((sel) => {
    const node = document.querySelector(sel);
    if (node && node.offsetParent !== null) return { ok: true };
    const status = document.getElementById("status");
    if (status && !status.hidden && status.dataset.kind === "error") return { ok: false, message: status.textContent };
    return false;
  }, selector, { timeout: STEP_MS, polling: 100 });
  const result = await handle.jsonValue();
  if (!result.ok) throw new Error(`waiting for ${selector}, the page said: ${result.message}`);
}

async function textOf(selector) {
  return ((await page.locator(selector).first().textContent()) || "").trim();
}

async function until(what, predicate) {
  const started = Date.now();
  for (;;) {
    if (await predicate()) return;
    if (Date.now() - started > STEP_MS) throw new Error(`timed out: ${what}`);
    await page.waitForTimeout(100);
  }
}

async function signIn(slug, email) {
  await page.goto(`${base}/admin?org=${slug}`);
  await page.waitForSelector("body[data-ready]", { timeout: STEP_MS });
  await shows("#email");
  await page.fill("#email", email);
  await page.click("#send-code");
  await shows("#code");
  await page.fill("#code", await emailCode(email));
  await page.click("#verify-code");
  await shows("#tab-users");
  log(`${email} signed in to ${slug}'s dashboard`);
}

async function tab(id) {
  await page.click(`#tab-${id}`);
  await page.waitForFunction((tabId) => {
    const button = document.getElementById(`tab-${tabId}`);
    const panel = document.getElementById("panel");
    return button && button.getAttribute("aria-current") === "page" && panel && !panel.textContent.includes("Loading…");
  }, id, { timeout: STEP_MS });
}

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
  });
  const context = await browser.newContext();
  page = await context.newPage();
  page.on("console", (msg) => {
    const text = msg.text();
    // Script blocked by the policy means something tried to run: markup got in.
    if (/Content Security Policy/i.test(text) && /'script-src/.test(text)) violations.push(text);
    if (msg.type() === "error") log("console:", text);
  });
  page.on("pageerror", (err) => violations.push(`page error: ${err.message}`));

  // ------------------------------------------------------------ Acme's administrator
  await signIn("acme", "ann@acme.example");
  const headers = await page.evaluate(async () => {
    const res = await fetch("/admin", { cache: "no-store" });
    return { csp: res.headers.get("content-security-policy"), frame: res.headers.get("x-frame-options") };
  });
  check(headers.csp && headers.csp.includes("script-src 'self'") && !headers.csp.includes("unsafe"), `CSP: ${headers.csp}`);
  check(headers.csp.includes("frame-ancestors 'none'"), `CSP: ${headers.csp}`);
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + document.cookie);
  check(!/eyJ/.test(stored), `a token is readable by the page: ${stored}`);

  await tab("organization");
  await page.uncheck("#sign-in-methods input[name=method-password]");
  await page.click("#org-form button[type=submit]");
  await until("the settings are saved", async () => (await textOf("#status")) === "Saved.");
  check(!(await page.locator("#sign-in-methods input[name=method-password]").isChecked()), "passwords still on");
  log("passwords turned off for Acme");

  await tab("roles");
  await page.fill("#role-form input[name=name]", "support");
  await page.check('#role-form input[name=permission][value="users:read"]');
  await page.click("#role-form button[type=submit]");
  await until("the new role is listed", async () => (await textOf("#roles")).includes("support"));
  log("role support created");

  await tab("users");
  await until("Max is listed", async () => (await textOf("#users")).includes("max@acme.example"));
  await page.fill("#user-search", "max");
  const rows = await page.locator("#users tbody tr").count();
  check(rows === 1, `the search for max shows ${rows} rows`);
  check((await textOf("#users")).includes('<img src=x onerror="window.__xss=1">'), "Max's name shows as text");
  await page.click('#users tr[data-email="max@acme.example"] button');
  await shows("#user-card");
  await page.check("#roles-form input[value=support]");
  await page.click("#roles-form button[type=submit]");
  await until("the role is saved", async () =>
    page.locator("#roles-form input[value=support]").isChecked().catch(() => false));
  await page.click("#block-user");
  await until("Max shows blocked", async () => (await textOf("#user-state")).startsWith("Blocked"));
  log("Max has the role and is blocked");

  await tab("templates");
  await page.selectOption("#template-form select[name=kind]", "email_code");
  await page.fill("#template-form input[name=subject]", "Acme sign-in code");
  await page.fill("#template-form textarea[name=intro]", "Hello {{recipient}}, here is your code:");
  await until("the preview shows the subject", async () =>
    (await page.locator("#preview-subject").count()) > 0 && (await textOf("#preview-subject")) === "Acme sign-in code");
  const preview = await textOf("#preview-text");
  check(preview.includes("123456") && preview.includes("Hello jane.doe@example.com"), `preview text: ${preview}`);
  await page.fill("#template-form textarea[name=outro]", "Questions? Visit https://evil.example/");
  await until("a URL in the wording is refused", async () => (await page.locator("#preview-error").count()) > 0);
  await page.fill("#template-form textarea[name=outro]", "");
  await until("the preview is back", async () => (await page.locator("#preview-subject").count()) > 0);
  await page.click("#template-form button[type=submit]");
  await until("the template is saved", async () => (await textOf("#saved-templates")).includes("Acme sign-in code"));
  log("template previewed and saved");

  await tab("logs");
  await until("the log has rows", async () => (await page.locator("#log tbody tr").count()) > 0);
  await page.selectOption("#log-filters select[name=kind]", "sign_in");
  await page.click("#log-filters button[type=submit]");
  await until("only sign-ins are listed", async () => {
    const kinds = await page.locator("#log tbody tr td:nth-child(2)").allTextContents();
    return kinds.length > 0 && kinds.every((k) => k === "sign_in");
  });
  const exported = await page.evaluate(async () => {
    const res = await fetch(document.getElementById("log-export").getAttribute("href"), { cache: "no-store" });
    return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
  });
  check(exported.status === 200 && exported.type === "application/x-ndjson", `export: ${exported.status} ${exported.type}`);
  check(exported.text.trim().split("\n").every((l) => JSON.parse(l).kind === "sign_in"), "the export keeps the filter");
  log("login log filtered and exported");

  const acme = await page.evaluate(async () => (await (await fetch("/admin/config.json?org=acme")).json()).org_id);
  await page.click("#sign-out");
  await shows("#email");

  // ------------------------------------------------------------ Bolt's administrator
  await signIn("bolt", "bea@bolt.example");
  await tab("users");
  check(!(await textOf("#users")).includes("max@acme.example"), "Bolt's dashboard lists Max");
  await tab("roles");
  check(!(await textOf("#roles")).includes("support"), "Bolt's dashboard lists Acme's role");
  await tab("templates");
  check(!(await textOf("#saved-templates")).includes("Acme sign-in code"), "Bolt's dashboard lists Acme's template");
  const refused = await page.evaluate(async (id) => {
    const statuses = [];
    for (const path of [`/organizations/${id}/members`, `/organizations/${id}/roles`, `/organizations/${id}/templates`]) {
      statuses.push((await fetch(`/api/v1${path}`, { cache: "no-store" })).status);
    }
    return statuses;
  }, acme);
  check(refused.every((s) => s === 403), `Acme's routes answered Bea's session: ${refused}`);
  log("Bolt's administrator sees none of Acme");

  const xss = await page.evaluate(() => window.__xss);
  check(xss === undefined, "Max's name ran as script");
  check(violations.length === 0, `script blocked or failed: ${violations.join(" | ")}`);
}

main().then(
  async () => {
    await browser.close().catch(() => {});
    out("E2E OK");
    process.exit(0);
  },
  async (err) => {
    console.error("admin: FAILED:", err && err.stack || err);
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
    out(`E2E FAILED: ${String(err && err.message || err).split("\n")[0]}`);
    await browser?.close().catch(() => {});
    process.exit(1);
  },
);
