// End-to-end run of single sign-on in headless Chromium: the IT-admin setup page, then the
// login page's "Continue with SSO", both through the identity provider's own login page.
// $SSO_PROTOCOL says which: `oidc` (the default) or `saml`.
//
//   node sso.mjs <base_url> <setup_link_url>
//
// The run: open the setup link; check the redirect URI shown; enter the provider's
// details and the domain acme.test, then:
//   oidc  the issuer, client id and secret from $SSO_ISSUER, $SSO_CLIENT_ID, $SSO_SECRET;
//   saml  choose SAML 2.0, paste the metadata from $SAML_METADATA_XML, NameID persistent;
//         after saving, check the fields read from it (the entity ID $SAML_IDP_ENTITY_ID)
//         and our service provider's values shown (entity ID, ACS URL, the metadata behind
//         the link), and have the caller register them at the provider.
// Publish the shown TXT record (through the caller) and check it; run a test sign-in,
// typing the login "it" at the provider's page; activate. Then on the login page, in a
// new browser context (another person's browser, with no session at the provider): type
// alice@acme.test, "Continue with SSO", type the login "alice" at the provider's page, and
// land signed in as alice@acme.test. Logins are typed with the password $SSO_PASSWORD.
//
// SAML: the provider's page posts the response to our ACS from its own site, so the
// browser leaves out our SameSite=Lax binding cookie; our ACS answers with a page that
// posts it again from our origin. Each SAML sign-in must go through that re-post (every
// POST to the ACS is logged, with whether it carried the cookie).
//
// Protocol with the caller (a cargo test that started the server, the provider and a DNS
// server), one line per message:
//   stdout  SP <entity_id> <acs_url>  (saml) the caller has the provider trust our service
//                                     provider and answers "ok"
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
const saml = process.env.SSO_PROTOCOL === "saml";
const issuer = process.env.SSO_ISSUER || "";
const idpEntityId = process.env.SAML_IDP_ENTITY_ID || "";
const metadataXml = process.env.SAML_METADATA_XML || "";
const password = process.env.SSO_PASSWORD || "any password";
if (
  !/^https?:\/\//.test(base) ||
  !setupLink.startsWith(base + "/setup?token=") ||
  (saml ? !idpEntityId || !metadataXml : !issuer)
) {
  console.error(
    "usage: SSO_ISSUER=.. SSO_CLIENT_ID=.. SSO_SECRET=.. node sso.mjs <base_url> <setup_link_url>\n" +
      "   or: SSO_PROTOCOL=saml SAML_IDP_ENTITY_ID=.. SAML_METADATA_XML=.. node sso.mjs <base_url> <setup_link_url>",
  );
  process.exit(2);
}
// Where the provider's own pages are: the OpenID issuer, or the SAML IdP's origin.
const providerPages = saml ? new URL(idpEntityId).origin + "/" : issuer;

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

/** The POSTs to our ACS the browser made (SAML), as `watch` records them (promises). */
let acsPosts = [];

/** Logs where `page` goes, and (SAML) records each POST to our ACS and its answer. */
function watch(page) {
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => log("page error:", e.message));
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) log(`navigated: ${frame.url().split("?")[0]}`);
  });
  page.on("response", (response) => {
    const request = response.request();
    if (request.method() !== "POST" || !new URL(request.url()).pathname.endsWith("/saml/acs")) return;
    const recorded = request.allHeaders().then((headers) => {
      const post = {
        resubmitted: /(^|&)resubmitted=1(&|$)/.test(request.postData() || ""),
        cookie: /(^|;\s*)portcullis_sso=/.test(headers.cookie || ""),
        origin: headers.origin || "(none)",
        status: response.status(),
      };
      log(
        `POST ${new URL(request.url()).pathname}` +
          `${post.resubmitted ? " re-posted by our page" : ""} (Origin ${post.origin}), ` +
          `binding cookie ${post.cookie ? "sent" : "not sent"}: HTTP ${post.status}`,
      );
      return post;
    });
    acsPosts.push(recorded);
  });
}

/** Signs `login` in on the provider's own page, which sends the browser back to us. */
async function providerLogin(login) {
  acsPosts = [];
  await page.waitForURL((url) => url.href.startsWith(providerPages), { timeout: STEP_MS });
  log(`at the provider's page: ${page.url().split("?")[0]}`);
  await page.locator(saml ? 'input[name="username"]' : 'input[name="login"]').fill(login, { timeout: STEP_MS });
  const secret = page.locator('input[name="password"]');
  if (await secret.count()) await secret.fill(password);
  await page.locator('form:has(input[name="password"]) [type="submit"]').first().click({ timeout: STEP_MS });
  log("signed in at the provider");
  await page.waitForURL((url) => url.href.startsWith(base), { timeout: STEP_MS });
  log(`back at ${new URL(page.url()).pathname}`);
}

/**
 * SAML: the provider's cross-site POST reached our ACS without the binding cookie and was
 * answered with our re-post page, whose POST (from our origin, with the cookie) finished.
 */
async function checkAcsRepost() {
  if (!saml) return;
  const posts = await withTimeout(Promise.all(acsPosts), 5000, "the ACS requests' headers");
  const [first, again] = posts;
  const seen = JSON.stringify(posts);
  if (posts.length !== 2) throw new Error(`two POSTs to the ACS expected: ${seen}`);
  if (first.resubmitted || first.cookie || first.status !== 200) {
    throw new Error(`the provider's POST to the ACS: ${seen}`);
  }
  if (!again.resubmitted || !again.cookie || again.status !== 302) {
    throw new Error(`our page's re-post to the ACS: ${seen}`);
  }
}

/** The OpenID provider's details. */
async function oidcDetails() {
  await page.fill("#issuer", issuer);
  await page.fill("#client-id", process.env.SSO_CLIENT_ID || "portcullis");
  await page.fill("#client-secret", process.env.SSO_SECRET || "");
}

/** The SAML provider's metadata; then our service provider's values, to the caller. */
async function samlDetails() {
  if (!(await page.locator("#register-saml").isHidden())) throw new Error("SAML shown before it was chosen");
  await page.check("#protocol-saml");
  await page.locator("#fields-saml").waitFor({ state: "visible", timeout: STEP_MS });
  if (!(await page.locator("#fields-oidc").isHidden())) throw new Error("the OpenID fields stayed");
  if ((await textOf("sp-entity-id")) !== "—") throw new Error("an entity ID before the connection");
  await page.fill("#saml-metadata-xml", metadataXml);
  await page.selectOption("#saml-name-id-format", "persistent");
  return async () => {
    // What the engine read from the metadata.
    const entityId = await page.inputValue("#saml-entity-id");
    if (entityId !== idpEntityId) throw new Error(`the provider's entity ID shown: ${entityId}`);
    const ssoUrl = await page.inputValue("#saml-sso-url");
    if (!ssoUrl.startsWith(providerPages)) throw new Error(`the SSO URL shown: ${ssoUrl}`);
    if (!(await page.inputValue("#saml-certificate")).startsWith("-----BEGIN CERTIFICATE-----\n")) {
      throw new Error("no certificate shown");
    }
    if (await page.isEnabled("#protocol-oidc")) throw new Error("the protocol can still change");
    // Ours, to register there.
    const sp = await textOf("sp-entity-id");
    const acs = await textOf("sp-acs-url");
    const shape = new RegExp(`^${base.replace(/[.]/g, "\\.")}/api/v1/sso/[0-9a-f-]{36}/saml/`);
    if (!shape.test(sp) || !sp.endsWith("/metadata") || acs !== sp.replace(/metadata$/, "acs")) {
      throw new Error(`our service provider's values: ${sp} ${acs}`);
    }
    const link = await page.getAttribute("#sp-metadata-link", "href");
    if (link !== sp || !(await page.isVisible("#sp-metadata-link"))) throw new Error(`the metadata link: ${link}`);
    const metadata = await page.request.get(link);
    const xml = await metadata.text();
    if (!metadata.ok() || !xml.includes(`entityID="${sp}"`) || !xml.includes(`Location="${acs}"`)) {
      throw new Error(`our metadata (HTTP ${metadata.status()}): ${xml.slice(0, 400)}`);
    }
    out(`SP ${sp} ${acs}`);
    if ((await readLine()) !== "ok") throw new Error("the caller did not register our service provider");
  };
}

async function run() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  const context = await browser.newContext();
  page = await context.newPage();
  watch(page);

  log("the setup link");
  await page.goto(setupLink);
  await page.locator("#view-setup").waitFor({ state: "visible", timeout: STEP_MS });
  if (page.url() !== base + "/setup") throw new Error(`the token stayed in the address bar: ${page.url()}`);
  const redirect = await textOf("setup-redirect-uri");
  if (redirect !== base + "/api/v1/sso/callback") throw new Error(`redirect URI shown: ${redirect}`);

  log(`the provider's details (${saml ? "SAML 2.0" : "OpenID Connect"})`);
  const registered = saml ? await samlDetails() : await oidcDetails();
  await page.fill("#domain", "acme.test");
  await page.click("#btn-save-provider");
  await waitText("connection-state", /draft, not tested yet/);
  if (registered) {
    log("our service provider's values, registered at the provider");
    await registered();
  }

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
  await checkAcsRepost();
  await waitText("connection-state", /draft, tested/);
  await page.click("#btn-activate");
  await waitText("connection-state", /^active, tested$/);

  log("Continue with SSO on the login page, in another person's browser");
  page = await (await browser.newContext()).newPage();
  watch(page);
  page.on("console", (m) => log("console:", m.text()));
  await page.goto(base + "/");
  await page.locator("#view-signin").waitFor({ state: "visible", timeout: STEP_MS });
  await page.fill("#email", "alice@acme.test");
  await page.click("#btn-sso");
  await providerLogin("alice");
  await page.locator("#view-account").waitFor({ state: "visible", timeout: STEP_MS });
  await waitText("account-email", /^alice@acme\.test$/);
  if (new URL(page.url()).search !== "") throw new Error(`the code stayed in the address bar: ${page.url()}`);
  await checkAcsRepost();

  finished = true;
  out("E2E OK");
  await withTimeout(browser.close(), 5000, "browser close").catch(() => {});
  // stdin stays open for the caller's answers: leave without waiting for it.
  process.exit(0);
}

run().catch(fail);
