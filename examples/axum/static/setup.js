/*
 * The IT-admin setup page (`/setup?token=` from a setup link): register the redirect URI
 * at the provider, enter its details, prove the domain by DNS TXT, run a test sign-in and
 * activate the connection. Plain ES2020 under the same CSP as the login page.
 *
 * The link's token is spent on arrival for a setup session, kept in this tab's
 * sessionStorage and sent as the bearer of every call; it reaches only this
 * organization's domains and its one connection.
 *
 * Stable element ids (tests rely on them): status view-invalid view-setup
 *   setup-redirect-uri issuer client-id client-secret domain btn-save-provider
 *   connection-state txt-name txt-value btn-check-domain domain-state btn-test btn-activate
 */
"use strict";

(() => {
  const API = "/api/v1";
  const KEY_SESSION = "portcullis.setup";
  const KEY_DOMAIN = "portcullis.setup.domain";
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  const state = { token: null, org: null, connection: null };

  function showStatus(message, kind = "info") {
    const box = $("status");
    box.textContent = message;
    box.className = "status " + kind;
    box.hidden = false;
  }

  function show(view) {
    for (const section of document.querySelectorAll("section.view")) {
      section.hidden = section.id !== "view-" + view;
    }
  }

  async function call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.token) headers.Authorization = "Bearer " + state.token;
    const res = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    const text = res.status === 204 ? "" : await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) {
      const error = new Error((data && data.error && data.error.message) || `The server answered ${res.status}`);
      error.status = res.status;
      throw error;
    }
    return data;
  }

  const orgPath = (rest) => `/organizations/${enc(state.org)}${rest}`;

  function showConnection(c) {
    state.connection = c;
    if (!c) return;
    $("issuer").value = c.issuer || "";
    $("client-id").value = c.client_id || "";
    if (c.domains && c.domains[0] && !$("domain").value) $("domain").value = c.domains[0];
    $("connection-state").textContent = `${c.status}${c.tested ? ", tested" : ", not tested yet"}`;
  }

  function showDomain(d) {
    if (!d) return;
    $("txt-name").textContent = d.txt_name;
    $("txt-value").textContent = d.txt_value;
    $("domain-state").textContent = d.verified ? "verified" : "not verified yet";
  }

  async function load() {
    const scope = await call("GET", "/setup/session");
    state.org = scope.org_id;
    $("setup-redirect-uri").textContent = scope.redirect_uri;
    if (scope.connection_id) {
      showConnection(await call("GET", orgPath(`/sso-connections/${enc(scope.connection_id)}`)));
    }
    const domains = await call("GET", orgPath("/domains"));
    const wanted = sessionStorage.getItem(KEY_DOMAIN);
    showDomain(domains.items.find((d) => d.domain === wanted) || domains.items[0]);
  }

  async function saveProvider() {
    const domain = $("domain").value.trim().toLowerCase();
    const body = {
      issuer: $("issuer").value.trim(),
      client_id: $("client-id").value.trim(),
      domains: domain ? [domain] : [],
      jit_provisioning: true,
    };
    const secret = $("client-secret").value;
    if (secret) body.client_secret = secret;
    const saved = state.connection
      ? await call("PATCH", orgPath(`/sso-connections/${enc(state.connection.id)}`), body)
      : await call("POST", orgPath("/sso-connections"), body);
    $("client-secret").value = "";
    showConnection(saved);
    if (domain) {
      sessionStorage.setItem(KEY_DOMAIN, domain);
      showDomain(await call("POST", orgPath("/domains"), { domain }));
    }
    showStatus("Saved.", "success");
  }

  async function checkDomain() {
    const domain = sessionStorage.getItem(KEY_DOMAIN) || $("domain").value.trim().toLowerCase();
    if (!domain) throw new Error("Save your email domain first.");
    const checked = await call("POST", orgPath(`/domains/${enc(domain)}/verify`), {});
    showDomain(checked);
    showStatus(checked.verified ? "The domain is verified." : "The record was not found yet.", checked.verified ? "success" : "info");
  }

  async function runTest() {
    if (!state.connection) throw new Error("Save the provider's details first.");
    const started = await call("POST", orgPath(`/sso-connections/${enc(state.connection.id)}/test`), {});
    location.assign(started.url);
  }

  async function activate() {
    if (!state.connection) throw new Error("Save the provider's details first.");
    showConnection(await call("PATCH", orgPath(`/sso-connections/${enc(state.connection.id)}`), { status: "active" }));
    showStatus("The connection is active.", "success");
  }

  function on(id, fn, formId) {
    const run = async (ev) => {
      if (ev) ev.preventDefault();
      try {
        await fn();
      } catch (err) {
        showStatus(err.message || String(err), "error");
      }
    };
    $(id).addEventListener("click", run);
    if (formId) $(formId).addEventListener("submit", run);
  }

  async function start() {
    on("btn-save-provider", saveProvider, "form-provider");
    on("btn-check-domain", checkDomain);
    on("btn-test", runTest);
    on("btn-activate", activate);
    const params = new URLSearchParams(location.search);
    const link = params.get("token");
    if (link) {
      history.replaceState(null, "", "/setup");
      try {
        const opened = await call("POST", "/setup/session", { token: link });
        sessionStorage.setItem(KEY_SESSION, opened.session_token);
      } catch (_) {
        show("invalid");
        return;
      }
    }
    state.token = sessionStorage.getItem(KEY_SESSION);
    if (!state.token) {
      show("invalid");
      return;
    }
    try {
      await load();
    } catch (err) {
      if (err.status === 401) {
        show("invalid");
        return;
      }
      throw err;
    }
    show("setup");
    if (params.get("tested")) {
      history.replaceState(null, "", "/setup");
      showStatus("The test sign-in passed.", "success");
    }
  }

  start().catch((err) => showStatus(err.message || String(err), "error"));
})();
