/*
 * Portcullis demo page: the browser side of examples/axum. An ES module on the browser SDK
 * (/sdk/portcullis.js), no build step, no external assets; runs under a CSP without
 * inline scripts or styles. The session is the SDK's cookie session.
 *
 * Stable element ids (tests rely on them):
 *   status                      message area (info / error / success)
 *   view-loading view-signin view-magic-wait view-magic-confirm view-code view-mfa
 *   view-mfa-enroll view-account                         the views (one shown at a time)
 *   Sign-in:      email phone password btn-passkey-login btn-passkey-signup btn-magic-link
 *                 btn-email-code btn-sms-code btn-password-login btn-password-signup
 *                 btn-sso (by the email's domain) btn-google
 *   Magic link:   magic-email magic-wait-state magic-device-code-shown btn-magic-resend
 *                 btn-magic-cancel
 *                 magic-confirm-text magic-requested-by (who asked: browser, place or
 *                 address, time) magic-device-code (shown only when the server asks for
 *                 the device code) btn-magic-confirm btn-magic-confirm-cancel
 *   Code:         code-target code btn-code-verify btn-code-resend btn-code-cancel
 *   MFA step:     mfa-code mfa-use-backup btn-mfa-verify btn-mfa-cancel
 *   MFA enrolment during sign-in: enroll-qr enroll-secret enroll-code btn-enroll-confirm
 *                 btn-enroll-cancel
 *   Account:      account-email account-amr account-acr account-session-expiry btn-logout
 *                 backup-codes-panel backup-codes btn-backup-done
 *                 passkey-list passkey-empty passkey-name btn-add-passkey
 *                   (rows: li[data-id], buttons passkey-rename-<id>, passkey-delete-<id>)
 *                 authenticator-list authenticator-empty btn-totp-enroll btn-backup-regenerate
 *                   (rows: li[data-id], buttons authenticator-remove-<id>)
 *                 totp-enroll-panel totp-qr totp-secret totp-code btn-totp-confirm btn-totp-cancel
 *                 session-list (rows: li[data-id], li.current; buttons session-revoke-<id>)
 *                 login-log (table; one tbody tr per entry) login-log-empty
 *   OpenID provider:  signin-for (which app the sign-in is for, on /?interaction=)
 *   <body data-passkey-autofill="pending"> while the conditional (autofill) passkey request
 *   waits in navigator.credentials.get, "off" once it has ended.
 */
import {
  PortcullisError,
  bufferToBase64url,
  createClient,
  creationOptionsFromJSON,
  credentialToJSON,
  requestOptionsFromJSON,
} from "/sdk/portcullis.js";

(() => {
  const API = "/api/v1";
  // The session lives in HttpOnly cookies (the SDK's cookie mode): no token is ever
  // readable by this page's scripts. Every call to the API goes through the SDK.
  const auth = createClient({
    session: "cookie",
    onSignedOut: () => signedOut("Your session has ended. Please sign in again."),
  });
  // The pending magic link of this browser: {request_id, poll_token, expires_at (ms)}. The
  // link, opened in another tab of this browser, sends the poll token to prove it is the
  // same browser; elsewhere the person types the device code shown by the asking tab.
  const KEY_MAGIC = "portcullis.magic";
  // An SSO sign-in under way in this tab: {state, verifier, client_id, redirect_uri}. The
  // provider sends the browser back to this page with ?code=&state= (PKCE, RFC 7636).
  const KEY_SSO = "portcullis.sso";

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // ---------------------------------------------------------------- state

  const state = {
    view: "loading",
    me: null, // /auth/status answer
    mfaToken: null,
    mfaMethods: [],
    code: null, // {kind: "email"|"sms", requestId, target}
    magic: null, // {requestId, pollToken, deviceCode, expiresAt, email, timer, stopped}
    magicLinkToken: null, // on the link's page: the token, the stored poll token, and
    magicPollToken: null, // whether the server asks for the device code
    magicNeedsDeviceCode: false,
    // An app's sign-in through the OpenID provider (/oauth2/authorize sent the browser
    // here with ?interaction=): {id, client_id, client_name, login_hint, fresh_sign_in}.
    interaction: null,
  };

  // ---------------------------------------------------------------- messages

  function showStatus(message, kind = "info") {
    const el = $("status");
    el.textContent = message;
    el.className = "status" + (kind === "info" ? "" : " " + kind);
    el.setAttribute("aria-live", kind === "error" ? "assertive" : "polite");
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    el.hidden = false;
  }

  function clearStatus() {
    const el = $("status");
    el.hidden = true;
    el.textContent = "";
  }

  function errorMessage(err) {
    if (err instanceof ApiError) return err.message;
    if (err && err.name === "NotAllowedError") {
      return "The passkey request was cancelled or timed out.";
    }
    if (err && err.name === "InvalidStateError") {
      return "This authenticator already holds a passkey for this account.";
    }
    if (err && err.name === "NotSupportedError") {
      return "This browser or device does not support passkeys here.";
    }
    if (err && err.name === "SecurityError") {
      return "The browser refused the passkey request for this site.";
    }
    return (err && err.message) || String(err);
  }

  function showError(err) {
    if (err && err.name === "AbortError") return;
    if (err && err.silent) return;
    showStatus(errorMessage(err), "error");
  }

  // ---------------------------------------------------------------- views

  const VIEWS = ["loading", "signin", "magic-wait", "magic-confirm", "code", "mfa", "mfa-enroll",
    "password-change", "unblock", "account"];

  function show(view, { focus = true } = {}) {
    const previous = state.view;
    state.view = view;
    for (const v of VIEWS) $("view-" + v).hidden = v !== view;
    document.querySelector("main.card").classList.toggle("wide", view === "account");
    if (view !== "magic-wait") stopMagicPolling();
    if (view === "signin") {
      startConditional();
    } else if (previous === "signin") {
      abortConditional();
    }
    if (focus && previous !== view) {
      const heading = $("view-" + view).querySelector("h2");
      if (heading) heading.focus({ preventScroll: true });
      const first = $("view-" + view).querySelector("input:not([type=checkbox])");
      if (first && view !== "signin" && view !== "account") first.focus();
    }
  }

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(status, code, message, retryAfter, challenge) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
      // The server sends `WWW-Authenticate: Bearer` only when the request's own
      // Authorization credential failed; a 401 about a code or token in the body or query
      // (a used auth_code, a wrong code, reauth_required) has none.
      this.bearerChallenge = status === 401 && /^\s*Bearer\b/i.test(challenge || "");
    }
  }

  /** The SDK's refusal as the page's: status, code, message, and whether the session's
   * own token was refused. */
  function apiError(err) {
    if (!(err instanceof PortcullisError)) return err;
    if (err.code === "network") {
      return new ApiError(0, "network", "Could not reach the server. Check your connection and try again.");
    }
    let message = err.message;
    if (err.status === 429 && err.retryAfter && !/\d/.test(message)) message += ` (try again in ${err.retryAfter} s)`;
    return new ApiError(err.status, err.code, message, err.retryAfter,
      err.challenge ? "Bearer" : null);
  }

  /** A call to the API that needs no session (sign-in steps), through the SDK: it answers
   * the server's bot check by itself (proof of work). */
  async function request(method, path, { body, signal } = {}) {
    // Signing in for an app: in the app's organization, under its rules (MFA, SSO).
    const headers = state.interaction ? { "X-Client-Id": state.interaction.client_id } : {};
    try {
      return await auth.request(method, path, { body, signal, headers, auth: false });
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw apiError(err);
    }
  }

  /** Whether an answer signed the person in (the tokens went to cookies). */
  const signedInAnswer = (answer) => !!(answer && (answer.token || answer.session === "cookie"));

  /** The session's tokens are cookies the server sets and clears: nothing to keep here. */
  function clearTokens() {}

  /** Rotates the session (one refresher across tabs: the SDK's Web Lock). */
  function refreshTokens() {
    return auth.refresh().catch((err) => {
      throw apiError(err);
    });
  }

  /** Drops the tokens and returns to the sign-in view with a message. */
  function signedOut(message) {
    clearTokens();
    state.me = null;
    show("signin");
    if (message) showStatus(message, "info");
  }

  /**
   * A call with the bearer token. Only a 401 with a `WWW-Authenticate: Bearer` challenge
   * means the access token itself was refused: then it refreshes once and retries (and
   * signs out when that fails). Any other error, a 401 about something in the body or
   * query included, goes to the caller to show.
   */
  async function authed(method, path, body) {
    if (!auth.signedIn()) {
      signedOut("Please sign in.");
      throw Object.assign(new ApiError(401, "invalid_token", "Please sign in."), { silent: true });
    }
    try {
      return await auth.request(method, path, { body });
    } catch (raw) {
      const err = apiError(raw);
      if (err instanceof ApiError && err.bearerChallenge) {
        // The SDK refreshed once and retried; this session is over.
        signedOut(err.code === "session_revoked" ? err.message || "This session was signed out."
          : "Your session has ended. Please sign in again.");
        err.silent = true;
      }
      throw err;
    }
  }

  // ---------------------------------------------------------------- busy buttons

  /** Runs an action for a button: disables it meanwhile and reports errors. */
  function action(button, fn) {
    return async (event) => {
      if (event) event.preventDefault();
      if (button.disabled || button.getAttribute("aria-busy") === "true") return;
      button.setAttribute("aria-busy", "true");
      button.disabled = true;
      try {
        await fn(event, button);
      } catch (err) {
        showError(err);
      } finally {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    };
  }

  /** Wires a button (and optionally a form's submit) to an action. */
  function on(buttonId, fn, formId) {
    const button = $(buttonId);
    const run = action(button, fn);
    button.addEventListener("click", run);
    if (formId) $(formId).addEventListener("submit", run);
  }

  /** Destructive buttons ask for a second click instead of a modal dialog. */
  function armed(button, label) {
    if (button.dataset.armed === "1") {
      delete button.dataset.armed;
      button.classList.remove("armed");
      button.textContent = button.dataset.label;
      return true;
    }
    button.dataset.armed = "1";
    button.dataset.label = button.textContent;
    button.textContent = label || "Click again to confirm";
    button.classList.add("armed");
    setTimeout(() => {
      if (button.dataset.armed === "1") {
        delete button.dataset.armed;
        button.classList.remove("armed");
        button.textContent = button.dataset.label;
      }
    }, 4000);
    return false;
  }

  // ---------------------------------------------------------------- WebAuthn JSON

  // The WebAuthn JSON conversions are the SDK's.
  const bufferToB64url = bufferToBase64url;
  const requestOptions = requestOptionsFromJSON;
  const creationOptions = creationOptionsFromJSON;
  const credentialJSON = credentialToJSON;

  function requireWebAuthn() {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      throw new Error("This browser does not support passkeys.");
    }
  }

  // ---------------------------------------------------------------- conditional UI

  // The pending conditional (autofill) request, if any: {controller, promise}.
  let conditional = null;
  // Set while a modal WebAuthn call runs, so that no conditional request starts meanwhile.
  let modalBusy = false;
  // The entry whose request <body data-passkey-autofill="pending"> announces (tests wait on it).
  let autofillOwner = null;

  function startConditional() {
    if (conditional || modalBusy) return;
    if (!window.PublicKeyCredential || typeof PublicKeyCredential.isConditionalMediationAvailable !== "function") return;
    const controller = new AbortController();
    const entry = { controller, promise: null };
    conditional = entry;
    const signal = controller.signal;
    entry.promise = (async () => {
      let available = false;
      try {
        available = await PublicKeyCredential.isConditionalMediationAvailable();
      } catch (_) {
        available = false;
      }
      if (!available || signal.aborted) return;
      let ceremony;
      try {
        ceremony = await request("GET", "/auth/passwordless/passkey/login", { signal });
      } catch (err) {
        if (!signal.aborted) console.warn("conditional passkey request not started:", errorMessage(err));
        return;
      }
      if (signal.aborted) return;
      let cred;
      autofillOwner = entry;
      document.body.dataset.passkeyAutofill = "pending";
      try {
        cred = await navigator.credentials.get({
          publicKey: requestOptions(ceremony.options.publicKey),
          mediation: "conditional",
          signal,
        });
      } catch (err) {
        if (!signal.aborted && err.name !== "AbortError") console.warn("conditional passkey request ended:", err.name);
        return;
      }
      if (!cred || signal.aborted) return;
      // The person picked a passkey from the autofill list.
      if (conditional === entry) conditional = null;
      try {
        const answer = await request("POST", `/auth/passwordless/passkey/login?auth_code=${enc(ceremony.auth_code)}`, {
          body: { passkey: credentialJSON(cred) },
        });
        await handleSignIn(answer);
      } catch (err) {
        showError(err);
        if (state.view === "signin") setTimeout(startConditional, 0);
      }
    })().finally(() => {
      if (conditional === entry) conditional = null;
      if (autofillOwner === entry) {
        autofillOwner = null;
        document.body.dataset.passkeyAutofill = "off";
      }
    });
  }

  /** Aborts the conditional request and waits (briefly) until it has settled. */
  async function abortConditional() {
    const entry = conditional;
    conditional = null;
    if (!entry) return;
    entry.controller.abort();
    await Promise.race([entry.promise.catch(() => {}), sleep(1500)]);
  }

  /** Runs a modal WebAuthn call with the conditional request out of the way. */
  async function modal(fn) {
    requireWebAuthn();
    modalBusy = true;
    try {
      await abortConditional();
      return await fn();
    } finally {
      modalBusy = false;
      if (state.view === "signin") startConditional();
    }
  }

  // ---------------------------------------------------------------- sign-in answers

  async function handleSignIn(answer) {
    if (!answer) throw new Error("The server sent an empty answer.");
    if (answer.code && sessionStorage.getItem(KEY_SSO)) {
      // An SSO sign-in that needed the MFA step ends with the authorization code.
      await ssoExchange(answer.code);
      return;
    }
    if (signedInAnswer(answer)) {
      clearStatus();
      state.mfaToken = null;
      $("password").value = "";
      if (state.interaction) {
        await continueToApp();
        return;
      }
      await showAccount();
      return;
    }
    if (answer.mfa_required) {
      state.mfaToken = answer.mfa_token;
      state.mfaMethods = answer.methods || ["totp"];
      $("mfa-code").value = "";
      $("mfa-use-backup").checked = false;
      $("mfa-backup-toggle").hidden = !state.mfaMethods.includes("backup_code");
      updateMfaLabel();
      clearStatus();
      show("mfa");
      return;
    }
    if (answer.password_change_required) {
      state.changeToken = answer.change_token;
      $("password").value = "";
      $("new-password").value = "";
      showStatus("This password appeared in a data breach. Choose a new one to finish signing in.", "error");
      show("password-change");
      return;
    }
    if (answer.mfa_enrollment_required) {
      state.mfaToken = answer.mfa_token;
      clearStatus();
      $("enroll-code").value = "";
      $("enroll-secret").textContent = "";
      $("enroll-qr").hidden = true;
      show("mfa-enroll");
      const e = await request("POST", "/mfa/totp/enroll", { body: { mfa_token: state.mfaToken } });
      $("enroll-secret").textContent = e.secret || "";
      if (e.qr_png_base64) {
        $("enroll-qr").src = "data:image/png;base64," + e.qr_png_base64;
        $("enroll-qr").hidden = false;
      }
      return;
    }
    throw new Error("The server's answer did not sign you in.");
  }

  function emailValue() {
    const input = $("email");
    const value = input.value.trim();
    if (!value || !/^[^\s@]+@[^\s@]+$/.test(value)) {
      input.focus();
      throw new Error("Enter your email address first.");
    }
    return value;
  }

  // ---------------------------------------------------------------- single sign-on

  function randomB64url(bytes) {
    return bufferToB64url(crypto.getRandomValues(new Uint8Array(bytes)).buffer);
  }

  /**
   * Sends the browser to the identity provider through `path` (a connection's or Google's
   * authorize route), as a redirect flow back to this page with PKCE. The route is tried
   * first without following it, so a missing connection shows its message here.
   */
  async function ssoStart(path, org) {
    const query = org ? "?org_id=" + enc(org) : "";
    const config = await (await fetch("/login-page.json" + query, { cache: "no-store" })).json();
    if (!config.client_id) throw new Error("Single sign-on is not available here.");
    const verifier = randomB64url(32);
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    const flow = {
      state: randomB64url(16),
      verifier,
      client_id: config.client_id,
      redirect_uri: location.origin + "/",
    };
    const url = API + path + "?" + new URLSearchParams({
      redirect_uri: flow.redirect_uri,
      client_id: flow.client_id,
      code_challenge: bufferToB64url(digest),
      code_challenge_method: "S256",
      state: flow.state,
    });
    const probe = await fetch(url, { redirect: "manual", credentials: "same-origin", cache: "no-store" });
    if (probe.type !== "opaqueredirect") {
      let message = "Single sign-on is not available here.";
      try {
        const body = await probe.json();
        if (body && body.error && body.error.code === "not_found") {
          message = "There is no single sign-on for this address.";
        } else if (body && body.error && body.error.message) {
          message = body.error.message;
        }
      } catch (_) {
        // keep the general message
      }
      throw new Error(message);
    }
    sessionStorage.setItem(KEY_SSO, JSON.stringify(flow));
    location.assign(url);
  }

  async function ssoByEmail() {
    const email = emailValue();
    let found;
    try {
      found = await request("GET", "/sso/discover?email=" + enc(email));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        throw new Error("There is no single sign-on for this address.");
      }
      throw err;
    }
    await ssoStart("/sso/" + enc(found.connection_id) + "/authorize", found.org_id);
  }

  /** Trades the code the provider's round trip ended with for tokens. */
  async function ssoExchange(code) {
    const flow = JSON.parse(sessionStorage.getItem(KEY_SSO) || "null");
    sessionStorage.removeItem(KEY_SSO);
    if (!flow) throw new Error("This sign-in was not started in this tab.");
    const answer = await request("POST", "/token", {
      body: {
        grant_type: "authorization_code",
        code,
        code_verifier: flow.verifier,
        client_id: flow.client_id,
        redirect_uri: flow.redirect_uri,
      },
    });
    await handleSignIn(answer);
  }

  /** Back from the provider: the code in the query, or the MFA step in the fragment. */
  async function ssoReturn(params) {
    const fragment = new URLSearchParams(location.hash.slice(1));
    history.replaceState(null, "", "/");
    const flow = JSON.parse(sessionStorage.getItem(KEY_SSO) || "null");
    const returned = params.get("state") || fragment.get("state");
    if (!flow || returned !== flow.state) {
      sessionStorage.removeItem(KEY_SSO);
      throw new Error("This sign-in was not started in this tab. Please start again.");
    }
    if (params.get("code")) {
      await ssoExchange(params.get("code"));
      return;
    }
    if (fragment.get("mfa_enrollment_required")) {
      await handleSignIn({ mfa_enrollment_required: true, mfa_token: fragment.get("mfa_token") });
      return;
    }
    await handleSignIn({
      mfa_required: true,
      mfa_token: fragment.get("mfa_token"),
      methods: (fragment.get("methods") || "totp").split(" "),
    });
  }

  // ---------------------------------------------------------------- passkeys (sign-in)

  async function passkeyLogin() {
    clearStatus();
    await modal(async () => {
      const ceremony = await request("GET", "/auth/passwordless/passkey/login");
      const cred = await navigator.credentials.get({ publicKey: requestOptions(ceremony.options.publicKey) });
      if (!cred) throw new Error("No passkey was chosen.");
      const answer = await request("POST", `/auth/passwordless/passkey/login?auth_code=${enc(ceremony.auth_code)}`, {
        body: { passkey: credentialJSON(cred) },
      });
      await handleSignIn(answer);
    });
  }

  async function passkeySignup() {
    clearStatus();
    const email = emailValue();
    await modal(async () => {
      const ceremony = await request("GET", `/auth/passwordless/passkey/register?identifier=${enc(email)}`);
      const cred = await navigator.credentials.create({ publicKey: creationOptions(ceremony.options.publicKey) });
      if (!cred) throw new Error("No passkey was created.");
      const answer = await request("POST", `/auth/passwordless/passkey/register?auth_code=${enc(ceremony.auth_code)}`, {
        body: { passkey: credentialJSON(cred), name: defaultPasskeyName() },
      });
      if (answer && answer.request_id) {
        signupCode(answer, email);
      } else if (answer && (signedInAnswer(answer) || answer.mfa_required || answer.mfa_enrollment_required)) {
        await handleSignIn(answer);
      } else {
        showStatus("Passkey saved. Sign in with it now.", "success");
      }
    });
  }

  function defaultPasskeyName() {
    const ua = navigator.userAgent;
    const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox"
      : /Chrom(e|ium)\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
    const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS X/.test(ua) ? "macOS"
      : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
    return os ? `${browser} on ${os}` : browser;
  }

  // ---------------------------------------------------------------- magic link

  /** The pending magic link stored for the link's page in another tab, if still valid. */
  function loadMagicEntry() {
    let entry = null;
    try {
      entry = JSON.parse(localStorage.getItem(KEY_MAGIC) || "null");
    } catch (_) {
      entry = null;
    }
    if (!entry || typeof entry.poll_token !== "string" || !(Number(entry.expires_at) > Date.now())) {
      if (entry) localStorage.removeItem(KEY_MAGIC);
      return null;
    }
    return entry;
  }

  function storeMagicEntry(m) {
    try {
      localStorage.setItem(KEY_MAGIC, JSON.stringify({
        request_id: m.requestId,
        poll_token: m.pollToken,
        expires_at: m.expiresAt,
      }));
    } catch (err) {
      console.warn("could not keep the magic link's poll token:", err);
    }
  }

  /** Forgets the stored entry of this request (not another tab's newer one). */
  function forgetMagicEntry(m) {
    let entry = null;
    try {
      entry = JSON.parse(localStorage.getItem(KEY_MAGIC) || "null");
    } catch (_) {
      entry = null;
    }
    if (!entry || !m || entry.request_id === m.requestId) localStorage.removeItem(KEY_MAGIC);
  }

  function showDeviceCode(code) {
    $("magic-device-code-shown").textContent = code || "";
    $("magic-device-code-box").hidden = !code;
  }

  async function magicLinkStart() {
    clearStatus();
    const email = emailValue();
    const r = await request("POST", "/auth/passwordless/magic-link", { body: { email } });
    const expiresIn = Number(r.expires_in) > 0 ? Number(r.expires_in) : 600;
    stopMagicPolling();
    state.magic = {
      requestId: r.request_id,
      pollToken: r.poll_token,
      deviceCode: r.device_code || null,
      expiresAt: Date.now() + expiresIn * 1000,
      email,
      timer: null,
      stopped: false,
    };
    storeMagicEntry(state.magic);
    $("magic-email").textContent = email;
    $("magic-wait-state").textContent = "Waiting for the link to be opened…";
    showDeviceCode(state.magic.deviceCode);
    show("magic-wait");
    scheduleMagicPoll(2000);
  }

  function scheduleMagicPoll(ms) {
    const m = state.magic;
    if (!m || m.stopped) return;
    clearTimeout(m.timer);
    m.timer = setTimeout(() => pollMagic(m), ms);
  }

  /** The poll has ended for good: stop it and forget the stored poll token. */
  function endMagicPoll(m) {
    m.stopped = true;
    clearTimeout(m.timer);
    forgetMagicEntry(m);
  }

  async function pollMagic(m) {
    if (m.stopped || state.magic !== m) return;
    let r;
    try {
      r = await request("GET",
        `/auth/passwordless/magic-link/status?request_id=${enc(m.requestId)}&poll_token=${enc(m.pollToken)}`);
    } catch (err) {
      if (m.stopped || state.magic !== m) return;
      if (err.status === 0 || err.status >= 500) return scheduleMagicPoll(4000);
      if (err.status === 429) return scheduleMagicPoll(Math.max(2, Number(err.retryAfter) || 5) * 1000);
      endMagicPoll(m);
      $("magic-wait-state").textContent = "Stopped waiting.";
      showError(err);
      return;
    }
    if (m.stopped || state.magic !== m) return;
    if (r.status === "pending") return scheduleMagicPoll(2000);
    if (r.status === "expired") {
      endMagicPoll(m);
      showDeviceCode(null);
      $("magic-wait-state").textContent = "The link expired.";
      showStatus("The link expired. Send a new one, or go back.", "error");
      return;
    }
    if (r.status === "verified") {
      endMagicPoll(m);
      const answer = Object.assign({}, r);
      delete answer.status;
      try {
        await handleSignIn(answer);
      } catch (err) {
        showError(err);
      }
      return;
    }
    scheduleMagicPoll(2000);
  }

  /** Leaving the waiting view (or cancelling): the poll ends. */
  function stopMagicPolling() {
    if (state.magic && !state.magic.stopped) endMagicPoll(state.magic);
  }

  async function magicLinkResend() {
    const m = state.magic;
    if (!m) return;
    clearStatus();
    const r = await request("POST", "/auth/passwordless/magic-link/resend", { body: { request_id: m.requestId } });
    // The answer may name a new request; otherwise the old one goes on.
    const expiresIn = Number(r && r.expires_in) > 0 ? Number(r.expires_in) : 0;
    const next = {
      requestId: (r && r.request_id) || m.requestId,
      pollToken: (r && r.poll_token) || m.pollToken,
      deviceCode: (r && r.device_code) || m.deviceCode,
      expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : m.expiresAt,
      email: m.email,
      timer: null,
      stopped: false,
    };
    stopMagicPolling();
    state.magic = next;
    storeMagicEntry(next);
    showDeviceCode(next.deviceCode);
    $("magic-wait-state").textContent = "Waiting for the link to be opened…";
    showStatus("We sent a new link.", "success");
    scheduleMagicPoll(2000);
  }

  function magicLinkCancel() {
    stopMagicPolling();
    state.magic = null;
    clearStatus();
    show("signin");
  }

  // The page opened from the email: peek first, sign in only on a click. In the browser
  // that asked for the link the stored poll token proves it; elsewhere the person types
  // the device code shown there.
  async function magicConfirmPage(token) {
    const entry = loadMagicEntry();
    state.magicLinkToken = token;
    state.magicPollToken = entry ? entry.poll_token : null;
    state.magicNeedsDeviceCode = false;
    // Keep the token out of the address bar and history.
    history.replaceState(null, "", "/magic-link");
    $("magic-device-code-field").hidden = true;
    $("magic-device-code").value = "";
    $("magic-requested-by").hidden = true;
    $("magic-requested-by").textContent = "";
    show("magic-confirm");
    $("btn-magic-confirm").disabled = true;
    try {
      let path = `/auth/passwordless/magic-link/verify?token=${enc(token)}`;
      if (state.magicPollToken) path += `&poll_token=${enc(state.magicPollToken)}`;
      const peek = await request("GET", path);
      if (peek && peek.valid === false) throw new Error("This sign-in link is no longer valid.");
      const minutes = peek && peek.expires_in ? Math.max(1, Math.round(peek.expires_in / 60)) : 0;
      const within = minutes ? ` within about ${minutes} min` : "";
      const askedBy = describeRequester(peek && peek.requested_by);
      if (askedBy) {
        $("magic-requested-by").textContent = askedBy;
        $("magic-requested-by").hidden = false;
      }
      if (peek && peek.needs_device_code) {
        state.magicNeedsDeviceCode = true;
        $("magic-confirm-text").textContent =
          "This link was asked for in another browser or on another device. Enter the code shown " +
          `there, then confirm${within}.`;
        $("magic-device-code-field").hidden = false;
        $("magic-device-code").focus();
      } else {
        $("magic-confirm-text").textContent =
          `Someone asked to sign in with this email address. If it was you, confirm${within}.`;
      }
      $("btn-magic-confirm").disabled = false;
    } catch (err) {
      $("magic-confirm-text").textContent = "This sign-in link cannot be used. Request a new one from the sign-in page.";
      showError(err);
    }
  }

  // "Requested from Firefox on Linux, Lyon, France (203.0.113.7), at 04/12/2026, 14:02:11":
  // what lets a person who did not ask notice, before they type a code someone gave them.
  // The server sends short labels; textContent keeps them text whatever they hold.
  function describeRequester(asker) {
    if (!asker || typeof asker !== "object") return "";
    const clip = (v, n) => (typeof v === "string" && v.trim() ? v.trim().slice(0, n) : "");
    const browserName = clip(asker.browser, 60) || "an unknown browser";
    const ip = clip(asker.ip, 45);
    const place = clip(asker.place, 64);
    const where = place && ip ? `${place} (${ip})` : place || ip;
    const at = Number(asker.at);
    const when = Number.isFinite(at) && at > 0 ? new Date(at).toLocaleString() : "";
    let text = `Requested from ${browserName}`;
    if (where) text += `, ${where}`;
    if (when) text += `, at ${when}`;
    return text + ".";
  }

  async function magicConfirm() {
    const token = state.magicLinkToken;
    if (!token) return;
    const body = { token };
    if (state.magicPollToken) body.poll_token = state.magicPollToken;
    if (state.magicNeedsDeviceCode) {
      const code = $("magic-device-code").value.replace(/\s/g, "");
      if (!code) {
        $("magic-device-code").focus();
        throw new Error("Enter the code shown in the browser that asked for the link.");
      }
      body.device_code = code;
    }
    clearStatus();
    let answer;
    try {
      answer = await request("POST", "/auth/passwordless/magic-link/verify", { body });
    } catch (err) {
      // A wrong device code: the server's message says why (400), or only that the proof
      // failed (401 invalid_credentials).
      if (body.device_code && err instanceof ApiError && err.code === "invalid_credentials") {
        err.message = "That code does not match. Enter the code shown in the browser that asked for the link.";
      }
      if (state.magicNeedsDeviceCode) {
        $("magic-device-code").focus();
        $("magic-device-code").select();
      }
      throw err;
    }
    state.magicLinkToken = null;
    state.magicPollToken = null;
    state.magicNeedsDeviceCode = false;
    // The stored poll token served its purpose here; the asking tab keeps its own copy.
    if (body.poll_token) {
      try {
        const entry = JSON.parse(localStorage.getItem(KEY_MAGIC) || "null");
        if (entry && entry.poll_token === body.poll_token) localStorage.removeItem(KEY_MAGIC);
      } catch (_) {
        localStorage.removeItem(KEY_MAGIC);
      }
    }
    history.replaceState(null, "", "/");
    await handleSignIn(answer);
    if (signedInAnswer(answer)) showStatus("Signed in — you can close this tab.", "success");
  }

  function magicConfirmCancel() {
    state.magicLinkToken = null;
    state.magicPollToken = null;
    state.magicNeedsDeviceCode = false;
    history.replaceState(null, "", "/");
    showStatus("Nothing was signed in. You can close this tab.", "info");
    show("signin");
  }

  // ---------------------------------------------------------------- one-time codes

  async function codeStart(kind) {
    clearStatus();
    let target;
    let r;
    if (kind === "email") {
      target = emailValue();
      r = await request("POST", "/auth/passwordless/email-code", { body: { email: target } });
    } else {
      target = $("phone").value.replace(/[\s()-]/g, "");
      if (!/^\+[1-9]\d{6,14}$/.test(target)) {
        $("phone").focus();
        throw new Error("Enter the phone number in international format, like +15551234567.");
      }
      r = await request("POST", "/auth/passwordless/sms-code", { body: { phone: target } });
    }
    state.code = { kind, requestId: r.request_id, target };
    $("code-target").textContent = target;
    $("code").value = "";
    show("code");
  }

  /** A sign-up waits for the code emailed to its address; the account is made with it. */
  function signupCode(r, target) {
    state.code = { kind: "signup", requestId: r.request_id, target };
    $("code-target").textContent = target;
    $("code").value = "";
    show("code");
    showStatus("We emailed you a code: enter it to finish creating your account.", "info");
  }

  // A sign-up's code is an emailed code: it is resent like one, and verified apart.
  const codeBase = () => (state.code.kind === "sms" ? "/auth/passwordless/sms-code" : "/auth/passwordless/email-code");
  const verifyPath = () => (state.code.kind === "signup" ? "/auth/signup/verify" : codeBase() + "/verify");

  async function codeVerify() {
    if (!state.code) return;
    const code = $("code").value.replace(/\s/g, "");
    if (!code) {
      $("code").focus();
      throw new Error("Enter the code you received.");
    }
    clearStatus();
    const answer = await request("POST", verifyPath(), { body: { request_id: state.code.requestId, code } });
    state.code = null;
    await handleSignIn(answer);
  }

  async function codeResend() {
    if (!state.code) return;
    clearStatus();
    const r = await request("POST", codeBase() + "/resend", { body: { request_id: state.code.requestId } });
    if (r && r.request_id) state.code.requestId = r.request_id;
    showStatus("We sent a new code.", "success");
  }

  // ---------------------------------------------------------------- passwords

  async function passwordAuth(kind) {
    clearStatus();
    const email = emailValue();
    const password = $("password").value;
    if (!password) {
      $("password").focus();
      throw new Error("Enter a password.");
    }
    const answer = await request("POST", `/auth/password/${kind}`, { body: { email, password } });
    if (kind === "signup") {
      signupCode(answer, email);
      return;
    }
    await handleSignIn(answer);
  }

  // ---------------------------------------------------------------- MFA step

  function updateMfaLabel() {
    const backup = $("mfa-use-backup").checked;
    $("mfa-code-label").textContent = backup ? "Backup code" : "Code from your authenticator app";
    $("mfa-code").inputMode = backup ? "text" : "numeric";
  }

  async function mfaVerify() {
    const value = $("mfa-code").value.trim();
    if (!value) {
      $("mfa-code").focus();
      throw new Error("Enter the code.");
    }
    clearStatus();
    const compact = value.replace(/\s/g, "");
    const backup = $("mfa-use-backup").checked || !/^\d{6}$/.test(compact);
    const body = backup ? { mfa_token: state.mfaToken, backup_code: value } : { mfa_token: state.mfaToken, code: compact };
    const answer = await request("POST", "/mfa/verify", { body });
    await handleSignIn(answer);
  }

  async function enrollConfirm() {
    const code = $("enroll-code").value.replace(/\s/g, "");
    if (!code) {
      $("enroll-code").focus();
      throw new Error("Enter the code from your app.");
    }
    clearStatus();
    const answer = await request("POST", "/mfa/totp/confirm", { body: { mfa_token: state.mfaToken, code } });
    if (!signedInAnswer(answer)) throw new Error("The server's answer did not sign you in.");
    state.mfaToken = null;
    await showAccount();
    showBackupCodes(answer.backup_codes);
  }

  function mfaCancel() {
    state.mfaToken = null;
    clearStatus();
    show("signin");
  }

  // ---------------------------------------------------------------- account

  const fmt = (ms) => (ms === null || ms === undefined || ms === "" ? "—" : new Date(Number(ms)).toLocaleString());
  const dash = (v) => (v === null || v === undefined || v === "" ? "—" : String(v));

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "className") node.className = v;
        else if (k === "text") node.textContent = v;
        else if (k === "dataset") Object.assign(node.dataset, v);
        else if (k === "onclick") node.addEventListener("click", v);
        else node.setAttribute(k, v === true ? "" : v);
      }
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function button(id, label, fn, extraClass) {
    const b = el("button", { id, type: "button", className: "btn small" + (extraClass ? " " + extraClass : "") }, label);
    b.addEventListener("click", action(b, fn));
    return b;
  }

  async function showAccount() {
    const me = await authed("GET", "/auth/status");
    state.me = me;
    $("account-email").textContent = me.email || "(no email)";
    $("account-amr").textContent = Array.isArray(me.amr) && me.amr.length ? me.amr.join(", ") : "—";
    $("account-acr").textContent = dash(me.acr);
    $("account-session-expiry").textContent = fmt(me.session_expires_at);
    $("backup-codes-panel").hidden = true;
    $("totp-enroll-panel").hidden = true;
    show("account");
    await refreshAccountLists();
  }

  async function refreshAccountLists() {
    const results = await Promise.allSettled([loadPasskeys(), loadAuthenticators(), loadSessions(), loadLoginLog()]);
    const failed = results.find((r) => r.status === "rejected");
    if (failed && state.view === "account") showError(failed.reason);
  }

  async function loadPasskeys() {
    const r = await authed("GET", "/auth/passkeys");
    const list = $("passkey-list");
    const items = (r && r.items) || [];
    list.replaceChildren(...items.map(passkeyRow));
    $("passkey-empty").hidden = items.length > 0;
  }

  function passkeyRow(p) {
    const name = el("div", { className: "name" }, p.name || "Passkey",
      p.backup_state ? el("span", { className: "badge ok", title: "Synced by your passkey provider" }, "synced") : null);
    const meta = el("div", { className: "meta" },
      `Added ${fmt(p.created_at)} · last used ${p.last_used_at ? fmt(p.last_used_at) : "never"}`);
    const info = el("div", { className: "info" }, name, meta);
    const rename = button(`passkey-rename-${p.id}`, "Rename", async () => startRename(li, p));
    const del = button(`passkey-delete-${p.id}`, "Delete", async (_ev, btn) => {
      if (!armed(btn, "Delete?")) return;
      clearStatus();
      await authed("DELETE", `/auth/passkeys/${enc(p.id)}`);
      showStatus("Passkey deleted.", "success");
      await Promise.all([loadPasskeys(), loadAuthenticators()]);
    }, "danger");
    const li = el("li", { dataset: { id: p.id } }, info, el("div", { className: "actions" }, rename, del));
    return li;
  }

  function startRename(li, p) {
    const input = el("input", { type: "text", maxlength: "64", "aria-label": "New name", id: `passkey-name-${p.id}` });
    input.value = p.name || "";
    const form = el("form", { className: "row", novalidate: true }, input);
    const save = el("button", { type: "submit", className: "btn small primary", id: `passkey-save-${p.id}` }, "Save");
    const cancel = el("button", { type: "button", className: "btn small ghost" }, "Cancel");
    form.append(save, cancel);
    const run = action(save, async () => {
      const name = input.value.trim();
      if (!name) throw new Error("Enter a name.");
      clearStatus();
      await authed("PATCH", `/auth/passkeys/${enc(p.id)}`, { name });
      await loadPasskeys();
    });
    form.addEventListener("submit", run);
    cancel.addEventListener("click", () => loadPasskeys().catch(showError));
    li.replaceChildren(form);
    input.focus();
    input.select();
  }

  async function addPasskey() {
    clearStatus();
    const name = $("passkey-name").value.trim();
    await modal(async () => {
      const ceremony = await authed("GET", "/auth/passwordless/passkey/register");
      const cred = await navigator.credentials.create({ publicKey: creationOptions(ceremony.options.publicKey) });
      if (!cred) throw new Error("No passkey was created.");
      const body = { passkey: credentialJSON(cred), name: name || defaultPasskeyName() };
      await authed("POST", `/auth/passwordless/passkey/register?auth_code=${enc(ceremony.auth_code)}`, body);
    });
    $("passkey-name").value = "";
    showStatus("Passkey added.", "success");
    await Promise.all([loadPasskeys(), loadAuthenticators()]);
  }

  const AUTH_LABELS = { totp: "Authenticator app", backup_codes: "Backup codes", passkey: "Passkey" };

  async function loadAuthenticators() {
    const r = await authed("GET", "/mfa/authenticators");
    const items = (r && r.items) || [];
    $("authenticator-list").replaceChildren(...items.map((a) => {
      const title = a.name ? `${AUTH_LABELS[a.type] || a.type}: ${a.name}` : AUTH_LABELS[a.type] || a.type;
      const bits = [];
      if (a.created_at) bits.push(`added ${fmt(a.created_at)}`);
      if (a.remaining !== undefined && a.remaining !== null) bits.push(`${a.remaining} left`);
      const info = el("div", { className: "info" }, el("div", { className: "name" }, title),
        bits.length ? el("div", { className: "meta" }, bits.join(" · ")) : null);
      // Backup codes and a verified phone are not removed from here (regenerate codes below).
      const removable = a.type === "totp" || a.type === "passkey";
      const remove = !removable ? null : button(`authenticator-remove-${a.id}`, "Remove", async (_ev, btn) => {
        if (!armed(btn, "Remove?")) return;
        clearStatus();
        await authed("DELETE", `/mfa/authenticators/${enc(a.id)}`);
        showStatus("Removed.", "success");
        await Promise.all([loadAuthenticators(), loadPasskeys()]);
      }, "danger");
      return el("li", { dataset: { id: a.id, type: a.type } }, info,
        remove ? el("div", { className: "actions" }, remove) : null);
    }));
    $("authenticator-empty").hidden = items.length > 0;
  }

  async function totpEnroll() {
    clearStatus();
    const r = await authed("POST", "/mfa/totp/enroll", {});
    $("totp-secret").textContent = r.secret || "";
    if (r.qr_png_base64) {
      $("totp-qr").src = "data:image/png;base64," + r.qr_png_base64;
      $("totp-qr").hidden = false;
    } else {
      $("totp-qr").hidden = true;
    }
    $("totp-code").value = "";
    $("totp-enroll-panel").hidden = false;
    $("totp-code").focus();
  }

  async function totpConfirm() {
    const code = $("totp-code").value.replace(/\s/g, "");
    if (!code) {
      $("totp-code").focus();
      throw new Error("Enter the code from your app.");
    }
    clearStatus();
    const r = await authed("POST", "/mfa/totp/confirm", { code });
    $("totp-enroll-panel").hidden = true;
    $("totp-qr").removeAttribute("src");
    $("totp-secret").textContent = "";
    showStatus("Authenticator app added.", "success");
    showBackupCodes(r && r.backup_codes);
    await loadAuthenticators();
  }

  function totpCancel() {
    $("totp-enroll-panel").hidden = true;
    $("totp-secret").textContent = "";
    $("totp-qr").removeAttribute("src");
  }

  async function regenerateBackupCodes(_ev, btn) {
    if (!armed(btn, "Replace old codes?")) return;
    clearStatus();
    const r = await authed("POST", "/mfa/backup-codes", {});
    showBackupCodes(r && r.backup_codes);
    await loadAuthenticators();
  }

  function showBackupCodes(codes) {
    if (!Array.isArray(codes) || !codes.length) return;
    $("backup-codes").replaceChildren(...codes.map((c) => el("li", null, c)));
    $("backup-codes-panel").hidden = false;
    $("backup-codes-panel").scrollIntoView({ block: "nearest" });
  }

  function hideBackupCodes() {
    $("backup-codes").replaceChildren();
    $("backup-codes-panel").hidden = true;
  }

  function shortAgent(ua) {
    if (!ua) return "Unknown browser";
    const m = ua.match(/(Edg|Firefox|Chrome|Chromium|Safari)\/([\d]+)/);
    const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS X/.test(ua) ? "macOS"
      : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
    if (!m) return ua.length > 60 ? ua.slice(0, 57) + "…" : ua;
    const name = m[1] === "Edg" ? "Edge" : m[1];
    return `${name} ${m[2]}${os ? " on " + os : ""}`;
  }

  async function loadSessions() {
    const r = await authed("GET", "/auth/sessions");
    const items = (r && r.items) || [];
    $("session-list").replaceChildren(...items.map((s) => {
      const name = el("div", { className: "name", title: s.user_agent || "" }, shortAgent(s.user_agent),
        s.current ? el("span", { className: "badge" }, "this session") : null);
      const amr = Array.isArray(s.amr) && s.amr.length ? ` · ${s.amr.join(", ")}` : "";
      const meta = el("div", { className: "meta" },
        `${dash(s.ip)} · started ${fmt(s.created_at)} · last seen ${fmt(s.last_seen_at)}${amr}`);
      const revoke = button(`session-revoke-${s.id}`, s.current ? "Sign out" : "Revoke", async (_ev, btn) => {
        if (!s.current && !armed(btn, "Revoke?")) return;
        clearStatus();
        await authed("DELETE", `/auth/sessions/${enc(s.id)}`);
        if (s.current) {
          signedOut("Signed out.");
          return;
        }
        showStatus("Session revoked.", "success");
        await loadSessions();
      }, s.current ? null : "danger");
      return el("li", { dataset: { id: s.id }, className: s.current ? "current" : null,
        "aria-current": s.current ? "true" : null }, el("div", { className: "info" }, name, meta),
      el("div", { className: "actions" }, revoke));
    }));
  }

  async function loadLoginLog() {
    if (!state.me || !state.me.user_id) return;
    const r = await authed("GET", `/users/${enc(state.me.user_id)}/login-logs?limit=20`);
    const items = (r && r.items) || [];
    const tbody = $("login-log").tBodies[0];
    tbody.replaceChildren(...items.map((e) => {
      const failed = /fail|denied|refused|error/i.test(e.kind || "");
      return el("tr", { dataset: { id: e.id } },
        el("td", { className: "when" }, fmt(e.at)),
        el("td", { className: failed ? "fail" : null }, dash(e.kind)),
        el("td", null, dash(e.method)),
        el("td", null, dash(e.reason)),
        el("td", null, dash(e.ip)),
        el("td", { className: "ua", title: e.user_agent || "" }, e.user_agent ? shortAgent(e.user_agent) : "—"));
    }));
    $("login-log-empty").hidden = items.length > 0;
  }

  async function logout() {
    clearStatus();
    try {
      // The SDK refreshes an expired access token once, so the server ends the session too.
      if (auth.signedIn()) await auth.signOut();
    } catch (raw) {
      // The session ends here anyway; an expired one is as good as over.
      const err = apiError(raw);
      if (!(err instanceof ApiError) || err.status !== 401) console.warn("logout:", errorMessage(err));
    }
    hideBackupCodes();
    totpCancel();
    signedOut("Signed out.");
  }

  // ---------------------------------------------------------------- wiring

  function enterClicks(inputId, buttonId) {
    $(inputId).addEventListener("keydown", (ev) => {
      if (ev.key !== "Enter" || ev.isComposing) return;
      ev.preventDefault();
      $(buttonId).click();
    });
  }

  function wire() {
    on("btn-passkey-login", passkeyLogin);
    on("btn-passkey-signup", passkeySignup);
    on("btn-magic-link", magicLinkStart);
    on("btn-email-code", () => codeStart("email"));
    on("btn-sms-code", () => codeStart("sms"), "form-sms");
    on("btn-password-login", () => passwordAuth("login"));
    on("btn-password-signup", () => passwordAuth("signup"));
    on("btn-sso", ssoByEmail);
    on("btn-google", () => ssoStart("/social/google/authorize"));
    // One form holds the email and the password (so password managers pair them) and has
    // no submit button: Enter in the email asks for a code, Enter in the password signs in.
    $("form-signin").addEventListener("submit", (ev) => ev.preventDefault());
    enterClicks("email", "btn-email-code");
    enterClicks("password", "btn-password-login");

    on("btn-magic-resend", magicLinkResend);
    on("btn-magic-cancel", async () => magicLinkCancel());
    on("btn-magic-confirm", magicConfirm, "form-magic-confirm");
    on("btn-magic-confirm-cancel", async () => magicConfirmCancel());

    on("btn-code-verify", codeVerify, "form-code");
    on("btn-code-resend", codeResend);
    on("btn-code-cancel", async () => {
      state.code = null;
      clearStatus();
      show("signin");
    });

    on("btn-mfa-verify", mfaVerify, "form-mfa");
    on("btn-mfa-cancel", async () => mfaCancel());
    $("mfa-use-backup").addEventListener("change", updateMfaLabel);
    on("btn-enroll-confirm", enrollConfirm, "form-mfa-enroll");
    on("btn-enroll-cancel", async () => mfaCancel());

    on("btn-password-change", passwordChangeFinish, "form-password-change");
    on("btn-unblock-me", async () => unblock(false));
    on("btn-unblock-not-me", async () => unblock(true));
    on("btn-reset-confirm", resetConfirm, "unblock-reset-form");

    on("btn-logout", logout);
    on("btn-add-passkey", addPasskey, "form-add-passkey");
    on("btn-totp-enroll", totpEnroll);
    on("btn-totp-confirm", totpConfirm, "totp-enroll-panel");
    on("btn-totp-cancel", async () => totpCancel());
    on("btn-backup-regenerate", regenerateBackupCodes);
    on("btn-backup-done", async () => hideBackupCodes());
  }

  // ---------------------------------------------------------------- breached password, unblock

  async function passwordChangeFinish() {
    const answer = await request("POST", "/auth/password/change-required", {
      body: { change_token: state.changeToken, new_password: $("new-password").value },
    });
    state.changeToken = null;
    $("new-password").value = "";
    await handleSignIn(answer);
  }

  function unblockPage(token) {
    history.replaceState(null, "", "/unblock");
    state.unblockToken = token;
    $("unblock-reset-form").hidden = true;
    show("unblock");
  }

  async function unblock(reset) {
    const r = await request("POST", "/auth/unblock", { body: { token: state.unblockToken, reset } });
    state.unblockToken = null;
    $("btn-unblock-me").disabled = true;
    $("btn-unblock-not-me").disabled = true;
    if (!reset) {
      showStatus("Done: that device may sign in again.", "success");
      return;
    }
    if (!r.reset_request_id) {
      showStatus("Done. We could not email a reset code just now: use “forgot password” in a minute.", "error");
      return;
    }
    state.resetRequestId = r.reset_request_id;
    $("unblock-reset-form").hidden = false;
    showStatus("We emailed you a code. Enter it with a new password.", "success");
    $("reset-code").focus();
  }

  async function resetConfirm() {
    const answer = await request("POST", "/auth/password/reset/confirm", {
      body: {
        request_id: state.resetRequestId,
        code: $("reset-code").value.trim(),
        new_password: $("reset-password").value,
      },
    });
    $("reset-password").value = "";
    await handleSignIn(answer);
  }

  // ---------------------------------------------------------------- OpenID provider

  // Hands the session just signed in with to the provider (which sets its own HttpOnly
  // cookie) and goes back to /oauth2/authorize, which answers the app.
  async function continueToApp() {
    let data;
    try {
      data = await auth.request("POST", "/oauth2/interaction", {
        body: { interaction: state.interaction.id },
        auth: false,
      });
    } catch (raw) {
      const err = apiError(raw);
      throw new ApiError(err.status || 0, err.code || "expired",
        err.message || "This sign-in for the app has expired: start again from the app.");
    }
    if (!data || !data.redirect_to) {
      throw new ApiError(0, "expired", "This sign-in for the app has expired: start again from the app.");
    }
    showStatus("Signed in. Returning to " + state.interaction.client_name + "…", "success");
    location.assign(data.redirect_to);
  }

  async function interactionPage(id) {
    let found;
    try {
      found = await auth.request("GET", "/oauth2/interaction?interaction=" + enc(id), { auth: false });
    } catch (_) {
      show("signin", { focus: false });
      showStatus("This sign-in for an app has expired: start again from the app.", "error");
      return;
    }
    state.interaction = Object.assign({ id }, found);
    const note = $("signin-for");
    note.textContent = "to continue to " + state.interaction.client_name;
    note.hidden = false;
    if (state.interaction.login_hint) $("email").value = state.interaction.login_hint;
    if (auth.signedIn() && !state.interaction.fresh_sign_in) {
      try {
        await continueToApp();
        return;
      } catch (_) {
        // Signed in elsewhere or expired: sign in here.
      }
    }
    show("signin", { focus: false });
  }

  async function start() {
    wire();
    const params = new URLSearchParams(location.search);
    if (params.get("interaction")) {
      await interactionPage(params.get("interaction"));
      return;
    }
    if (location.pathname.replace(/\/+$/, "") === "/unblock" && params.get("token")) {
      unblockPage(params.get("token"));
      return;
    }
    if (location.pathname.replace(/\/+$/, "") === "/magic-link") {
      const token = params.get("token");
      if (token) {
        await magicConfirmPage(token);
        return;
      }
      history.replaceState(null, "", "/");
    }
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (sessionStorage.getItem(KEY_SSO) && (params.get("state") || fragment.get("state"))) {
      show("signin", { focus: false });
      await ssoReturn(params);
      return;
    }
    if (auth.signedIn()) {
      try {
        await showAccount();
        return;
      } catch (err) {
        if (state.view === "signin") return; // signedOut() already said why
        show("signin");
        showError(err);
        return;
      }
    }
    show("signin", { focus: false });
  }

  window.addEventListener("pageshow", (ev) => {
    // Back/forward cache: a restored sign-in page needs its autofill request again.
    if (ev.persisted && state.view === "signin") startConditional();
  });

  start().catch(showError);
})();
