/*
 * The IT-admin setup page (`/setup?token=` from a setup link): choose the protocol, enter
 * the provider's details, register this application there, prove the domain by DNS TXT,
 * run a test sign-in and activate the connection. Plain ES2020 under the same CSP as the
 * login page.
 *
 * OpenID Connect: the redirect URI is known from the start; the details are the issuer
 * (its discovery document is read at save), client id and secret. SAML 2.0: the provider's
 * metadata, pasted or by URL (then only it is sent; the engine reads entity ID, SSO URL and
 * certificates from it), or those fields one by one, and the NameID format. Our service
 * provider's values name the connection, so they are shown once it is saved: the entity ID
 * (which is also our metadata's URL) and the assertion consumer service URL, both under
 * the engine's SSO base (the redirect URI's, without `/sso/callback`).
 *
 * The link's token is spent on arrival for a setup session, kept in this tab's
 * sessionStorage and sent as the bearer of every call; it reaches only this
 * organization's domains and its one connection.
 *
 * Stable element ids (tests rely on them): status view-invalid view-setup
 *   setup-redirect-uri issuer client-id client-secret domain btn-save-provider
 *   connection-state txt-name txt-value btn-check-domain domain-state btn-test btn-activate
 *   protocol-oidc protocol-saml saml-metadata-xml saml-metadata-url saml-entity-id
 *   saml-sso-url saml-certificate saml-name-id-format sp-entity-id sp-acs-url
 *   sp-metadata-link
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

  /** `oidc` or `saml`: the saved connection's kind, else the one chosen. */
  function protocol() {
    if (state.connection) return state.connection.kind === "saml" ? "saml" : "oidc";
    return $("protocol-saml").checked ? "saml" : "oidc";
  }

  /** Shows the steps of the protocol; once a connection is saved its kind is fixed. */
  function showProtocol() {
    const saml = protocol() === "saml";
    $("protocol-saml").checked = saml;
    $("protocol-oidc").checked = !saml;
    for (const id of ["protocol-oidc", "protocol-saml"]) $(id).disabled = Boolean(state.connection);
    $("register-oidc").hidden = saml;
    $("fields-oidc").hidden = saml;
    $("register-saml").hidden = !saml;
    $("fields-saml").hidden = !saml;
  }

  /** Base64 DER as PEM. */
  function pem(der) {
    const lines = String(der).match(/.{1,64}/g) || [];
    return ["-----BEGIN CERTIFICATE-----", ...lines, "-----END CERTIFICATE-----"].join("\n");
  }

  /** The certificates of the field: each PEM block, or the whole text as one base64 DER. */
  function certificates(text) {
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
    if (blocks) return blocks;
    return text.trim() ? [text.trim()] : [];
  }

  /** Our service provider's values for a saved SAML connection. */
  function showServiceProvider(c) {
    const saml = c && c.kind === "saml";
    $("sp-entity-id").textContent = saml ? c.sp_entity_id : "—";
    $("sp-acs-url").textContent = saml ? c.acs_url : "—";
    const link = $("sp-metadata-link");
    link.hidden = !saml;
    if (saml) link.href = c.sp_metadata_url;
    else link.removeAttribute("href");
  }

  function showConnection(c) {
    state.connection = c;
    showProtocol();
    showServiceProvider(c);
    if (!c) return;
    if (c.kind === "saml") {
      const saml = c.saml || {};
      $("saml-entity-id").value = c.issuer || "";
      $("saml-sso-url").value = saml.sso_url || "";
      $("saml-certificate").value = (saml.certificates || []).map(pem).join("\n");
      $("saml-name-id-format").value = saml.name_id_format || "persistent";
      $("saml-metadata-xml").value = "";
      $("saml-metadata-url").value = "";
    } else {
      $("issuer").value = c.issuer || "";
      $("client-id").value = c.client_id || "";
    }
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

  /** The provider's details of an OpenID Connect connection. */
  function oidcDetails() {
    const body = {
      issuer: $("issuer").value.trim(),
      client_id: $("client-id").value.trim(),
    };
    const secret = $("client-secret").value;
    if (secret) body.client_secret = secret;
    return body;
  }

  /** The provider's details of a SAML connection: its metadata if given, else the fields. */
  function samlDetails() {
    const body = { kind: "saml" };
    const saml = { name_id_format: $("saml-name-id-format").value };
    const xml = $("saml-metadata-xml").value.trim();
    const url = $("saml-metadata-url").value.trim();
    if (xml || url) {
      // Both at once are refused by the engine, which says so.
      if (xml) saml.metadata_xml = xml;
      if (url) saml.metadata_url = url;
    } else {
      const entityId = $("saml-entity-id").value.trim();
      const ssoUrl = $("saml-sso-url").value.trim();
      const certs = certificates($("saml-certificate").value);
      if (entityId) body.issuer = entityId;
      if (ssoUrl) saml.sso_url = ssoUrl;
      if (certs.length) saml.certificates = certs;
    }
    body.saml = saml;
    return body;
  }

  async function saveProvider() {
    const domain = $("domain").value.trim().toLowerCase();
    const body = protocol() === "saml" ? samlDetails() : oidcDetails();
    body.domains = domain ? [domain] : [];
    body.jit_provisioning = true;
    const saved = state.connection
      ? await call("PATCH", orgPath(`/sso-connections/${enc(state.connection.id)}`), body)
      : await call("POST", orgPath("/sso-connections"), body);
    $("client-secret").value = "";
    showConnection(saved);
    if (domain) {
      sessionStorage.setItem(KEY_DOMAIN, domain);
      showDomain(await call("POST", orgPath("/domains"), { domain }));
    }
    showStatus(
      saved.kind === "saml"
        ? "Saved. Now give your identity provider our entity ID and ACS URL (step 1)."
        : "Saved.",
      "success",
    );
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
    for (const id of ["protocol-oidc", "protocol-saml"]) $(id).addEventListener("change", showProtocol);
    showProtocol();
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
