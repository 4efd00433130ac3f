// @ts-check
/**
 * `<portcullis-login>`: the login widget, a web component on the SDK. It shows the sign-in
 * methods an organization allows (passkey, email code, password), in its branding (name,
 * logo, colour) from the public organization config, in any page, no framework needed:
 *
 *     <script type="module" src="https://auth.example.com/sdk/widget.js"></script>
 *     <portcullis-login server="https://auth.example.com" client-id="app_…"></portcullis-login>
 *
 * The page's origin must be in the server's `PORTCULLIS_ALLOWED_ORIGINS` (and under the
 * WebAuthn RP id for passkeys). The session is bearer tokens held in memory only: none is
 * written to storage the page shares. Events (bubbling, composed): `signed-in` (`detail`:
 * `{userId}`), `signed-out`. `element.accessToken()` gives the page the access token for
 * its own back end; `element.client` is the SDK client; `element.signOut()` signs out.
 *
 * @module portcullis/widget
 */

import { PortcullisError, createClient } from "./portcullis.js";

const CSS = `
:host { display: block; font: 15px/1.4 system-ui, sans-serif; color: #1d1d27; max-width: 22rem; }
.box { border: 1px solid #d6d6e0; border-radius: 10px; padding: 1.25rem; background: #fff; }
header { display: flex; align-items: center; gap: 0.6rem; margin-bottom: 0.9rem; }
img { height: 32px; }
h2 { font-size: 1.1rem; margin: 0; }
form { display: flex; flex-direction: column; gap: 0.5rem; margin: 0 0 0.6rem; }
input { font: inherit; padding: 0.5rem 0.6rem; border: 1px solid #b9b9c6; border-radius: 6px; }
button { font: inherit; padding: 0.5rem 0.8rem; border-radius: 6px; border: 1px solid var(--pc-accent, #1f4fd1);
  background: var(--pc-accent, #1f4fd1); color: #fff; cursor: pointer; }
button.secondary { background: transparent; color: var(--pc-accent, #1f4fd1); }
button:disabled { opacity: 0.6; cursor: default; }
.message { min-height: 1.2em; font-size: 0.9rem; margin: 0.3rem 0 0; }
.message.error { color: #b3261e; }
[hidden] { display: none !important; }
`;

/** @param {string} tag @param {Record<string, string>} [attrs] @param {(Node | string)[]} children */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

export class PortcullisLogin extends HTMLElement {
  constructor() {
    super();
    /** @type {ReturnType<typeof createClient> | null} */
    this.client = null;
    this.attachShadow({ mode: "open" });
    /** @type {string} */
    this.requestId = "";
    /** @type {string} */
    this.mfaToken = "";
  }

  connectedCallback() {
    if (this.client) return;
    this.#start().catch((err) => this.#say(err));
  }

  /** The access token for the page's back end (`null` when signed out). */
  accessToken() {
    return this.client ? this.client.accessToken() : null;
  }

  /** Signs out, here and on the server. */
  async signOut() {
    if (!this.client) return;
    await this.client.signOut().catch(() => {});
    this.#show("start");
    this.dispatchEvent(new CustomEvent("signed-out", { bubbles: true, composed: true }));
  }

  async #start() {
    const root = /** @type {ShadowRoot} */ (this.shadowRoot);
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
    const server = (this.getAttribute("server") || "").replace(/\/+$/, "");
    const clientId = this.getAttribute("client-id") || "";
    if (!server || !clientId) throw new PortcullisError(0, "config", "set server and client-id");
    /** @type {Map<string, string>} */
    const memory = new Map();
    this.client = createClient({
      baseUrl: server,
      clientId,
      session: "bearer",
      storage: {
        get: (key) => memory.get(key) ?? null,
        set: (key, value) => void memory.set(key, value),
        remove: (key) => void memory.delete(key),
      },
      onSignedOut: () => this.#show("start"),
    });
    const config = await this.client.get(`/organizations/by-client-id/${encodeURIComponent(clientId)}/config`, { auth: false });
    const branding = config.branding || {};
    if (typeof branding.primary_color === "string" && /^#[0-9a-fA-F]{6}$/.test(branding.primary_color)) {
      this.style.setProperty("--pc-accent", branding.primary_color);
    }
    const methods = config.sign_in_methods || {};
    const header = el("header", {});
    if (typeof branding.logo_url === "string" && branding.logo_url.startsWith("https://")) {
      header.append(el("img", { src: branding.logo_url, alt: "" }));
    }
    header.append(el("h2", { part: "title" }, `Sign in to ${branding.display_name || config.name}`));

    const email = el("input", { type: "email", name: "email", autocomplete: "username webauthn", placeholder: "you@example.com", required: "" });
    const emailForm = el("form", { part: "email-form", "data-step": "start" }, email,
      el("button", { type: "submit", part: "send-code" }, "Email me a code"));
    const code = el("input", { name: "code", inputmode: "numeric", autocomplete: "one-time-code", placeholder: "Code from the email", required: "" });
    const codeForm = el("form", { "data-step": "code" }, code, el("button", { type: "submit" }, "Sign in"));
    const password = el("input", { type: "password", name: "password", autocomplete: "current-password", placeholder: "Password" });
    const passwordButton = el("button", { type: "button", class: "secondary", "data-step": "start" }, "Sign in with password");
    const passkey = el("button", { type: "button", class: "secondary", part: "passkey", "data-step": "start" }, "Sign in with a passkey");
    const mfa = el("input", { name: "mfa", autocomplete: "one-time-code", placeholder: "Authenticator or backup code", required: "" });
    const mfaForm = el("form", { "data-step": "mfa" }, mfa, el("button", { type: "submit" }, "Continue"));
    const who = el("p", { part: "who" });
    const signOut = el("button", { type: "button", class: "secondary" }, "Sign out");
    const done = el("div", { "data-step": "done" }, who, signOut);
    const message = el("p", { class: "message", role: "status", "aria-live": "polite" });
    if (!methods.email_code) emailForm.querySelector("button")?.setAttribute("hidden", "");
    if (methods.password) emailForm.insertBefore(password, emailForm.lastChild);
    else passwordButton.setAttribute("hidden", "");
    if (!methods.passkey || !this.client.passkeys.supported()) passkey.setAttribute("hidden", "");
    root.replaceChildren(el("div", { class: "box", part: "box" }, header, emailForm, passwordButton, passkey, codeForm, mfaForm, done, message));

    const value = (/** @type {Element} */ input) => /** @type {HTMLInputElement} */ (input).value.trim();
    const run = (/** @type {(event: Event) => Promise<void>} */ fn) => async (/** @type {Event} */ event) => {
      event.preventDefault();
      this.#say("");
      const buttons = [...root.querySelectorAll("button")];
      buttons.forEach((b) => (b.disabled = true));
      try {
        await fn(event);
      } catch (err) {
        this.#say(err);
      } finally {
        buttons.forEach((b) => (b.disabled = false));
      }
    };
    const client = this.client;
    emailForm.addEventListener("submit", run(async () => {
      const sent = await client.emailCode.send(value(email));
      this.requestId = sent.requestId;
      this.#show("code");
      this.#say("We emailed you a code.");
      /** @type {HTMLInputElement} */ (code).focus();
    }));
    codeForm.addEventListener("submit", run(async () => this.#finish(await client.emailCode.verify(this.requestId, value(code)))));
    passwordButton.addEventListener("click", run(async () => this.#finish(await client.password.signIn(value(email), /** @type {HTMLInputElement} */ (password).value))));
    passkey.addEventListener("click", run(async () => this.#finish(await client.passkeys.signIn())));
    mfaForm.addEventListener("submit", run(async () => {
      const answer = value(mfa);
      const method = /^\d{6}$/.test(answer) ? "totp" : "backup_code";
      await this.#finish(await client.mfa.verify(this.mfaToken, { code: answer, method }));
    }));
    signOut.addEventListener("click", run(() => this.signOut()));
    this.#show("start");
    this.dataset.ready = "1";
    this.dispatchEvent(new CustomEvent("ready", { bubbles: true, composed: true }));
  }

  /** @param {import("./portcullis.js").SignInResult} result */
  async #finish(result) {
    if (result.mfaRequired && result.mfaToken) {
      this.mfaToken = result.mfaToken;
      this.#show("mfa");
      return;
    }
    if (!result.signedIn) {
      throw new PortcullisError(0, "unfinished", "This sign-in needs a step the widget does not offer: use the login page.");
    }
    const me = this.client ? await this.client.status() : null;
    const who = /** @type {ShadowRoot} */ (this.shadowRoot).querySelector("[part=who]");
    if (who) who.textContent = `Signed in as ${(me && (me.email || me.phone)) || result.userId}`;
    this.#show("done");
    this.dispatchEvent(new CustomEvent("signed-in", { bubbles: true, composed: true, detail: { userId: result.userId } }));
  }

  /** @param {string} step */
  #show(step) {
    for (const node of /** @type {ShadowRoot} */ (this.shadowRoot).querySelectorAll("[data-step]")) {
      node.toggleAttribute("hidden", /** @type {HTMLElement} */ (node).dataset.step !== step);
    }
  }

  /** @param {unknown} what */
  #say(what) {
    const message = /** @type {ShadowRoot} */ (this.shadowRoot).querySelector(".message");
    if (!message) return;
    const error = what instanceof Error;
    message.textContent = error ? /** @type {Error} */ (what).message : String(what || "");
    message.classList.toggle("error", error);
  }
}

if (typeof customElements !== "undefined" && !customElements.get("portcullis-login")) {
  customElements.define("portcullis-login", PortcullisLogin);
}
