// The dashboard: an installation's or an organization's administrators see and change
// their organization (settings, members, roles, apps, API credentials, message templates,
// SSO, the login log). It signs in through portcullis itself, in the organization named by
// `?org=<slug>` (the default organization without it), keeps its session in HttpOnly
// cookies, and talks to the API only through the browser SDK. Everything shown is set as
// text, never as markup.

import { PortcullisError, createClient } from "/sdk/portcullis.js";

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const enc = encodeURIComponent;

/**
 * An element with attributes (`on*` functions become listeners) and children (strings
 * become text nodes).
 */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const when = (ms) => (ms ? new Date(ms).toLocaleString() : "—");

function showStatus(message, kind = "info") {
  const status = $("status");
  status.textContent = message;
  status.dataset.kind = kind;
  status.hidden = !message;
}

function showError(err) {
  const message = err instanceof PortcullisError ? `${err.message} (${err.code})` : String(err && err.message || err);
  showStatus(message, "error");
}

/** Runs `fn` for a form or button, showing what fails. */
function act(fn) {
  return async (event) => {
    event?.preventDefault?.();
    showStatus("");
    try {
      await fn(event);
    } catch (err) {
      showError(err);
    }
  };
}

const state = {
  /** @type {any} */ config: null,
  /** @type {any} */ auth: null,
  /** @type {any} */ me: null,
  /** @type {string[]} */ perms: [],
  tab: "",
  requestId: "",
  mfaToken: "",
};

const org = () => state.config.org_id;
const base = () => `/organizations/${org()}`;
const may = (permission) => {
  if (!state.perms.length) return true;
  const [resource] = permission.split(":");
  return state.perms.includes(permission) || state.perms.includes(`${resource}:*`);
};

// ------------------------------------------------------------------ sign-in

function showSignIn(message) {
  $("signin").hidden = false;
  $("app").hidden = true;
  $("who").hidden = true;
  $("email-form").hidden = false;
  $("code-form").hidden = true;
  $("mfa-form").hidden = true;
  if (message) showStatus(message);
}

async function afterSignIn(result) {
  if (result.mfaRequired) {
    state.mfaToken = result.mfaToken;
    $("code-form").hidden = true;
    $("mfa-form").hidden = false;
    $("mfa-code").focus();
    return;
  }
  if (result.mfaEnrollmentRequired) {
    throw new Error("This organization requires a second factor: enrol one on the login page first.");
  }
  if (!result.signedIn) throw new Error("The sign-in did not finish.");
  await enter();
}

function wireSignIn() {
  $("email-form").addEventListener("submit", act(async () => {
    const sent = await state.auth.emailCode.send(/** @type {HTMLInputElement} */ ($("email")).value.trim());
    state.requestId = sent.requestId;
    $("email-form").hidden = true;
    $("code-form").hidden = false;
    $("code").focus();
    showStatus("We emailed you a code.");
  }));
  $("code-form").addEventListener("submit", act(async () => {
    const code = /** @type {HTMLInputElement} */ ($("code")).value.trim();
    await afterSignIn(await state.auth.emailCode.verify(state.requestId, code));
  }));
  $("mfa-form").addEventListener("submit", act(async () => {
    const value = /** @type {HTMLInputElement} */ ($("mfa-code")).value.trim();
    const method = /^\d{6}$/.test(value) ? "totp" : "backup_code";
    await afterSignIn(await state.auth.mfa.verify(state.mfaToken, { code: value, method }));
  }));
  $("passkey").addEventListener("click", act(async () => {
    await afterSignIn(await state.auth.passkeys.signIn());
  }));
  $("sign-out").addEventListener("click", act(async () => {
    await state.auth.signOut();
    showSignIn("Signed out.");
  }));
}

// ------------------------------------------------------------------ the sections

const TABS = [
  ["organization", "Organization", "organizations:read", renderOrganization],
  ["users", "Users", "users:read", renderUsers],
  ["roles", "Roles", "roles:read", renderRoles],
  ["apps", "Apps", "apps:read", renderApps],
  ["keys", "API credentials", "api_keys:read", renderKeys],
  ["templates", "Email templates", "organizations:read", renderTemplates],
  ["sso", "SSO", "sso:manage", renderSso],
  ["logs", "Login log", "logs:read", renderLogs],
];

async function enter() {
  state.me = await state.auth.status();
  if (state.me.org_id !== org()) {
    // A session of another organization: this dashboard is for this one.
    await state.auth.signOut().catch(() => {});
    showSignIn("Sign in again for this organization.");
    return;
  }
  state.perms = state.me.permissions || [];
  $("signin").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("who-email").textContent = state.me.email || state.me.user_id;
  const tabs = $("tabs");
  tabs.replaceChildren();
  for (const [id, label, permission] of TABS) {
    if (!may(permission)) continue;
    tabs.append(el("button", { type: "button", id: `tab-${id}`, onclick: () => open(id) }, label));
  }
  const first = TABS.find(([, , permission]) => may(permission));
  if (!first) {
    $("panel").replaceChildren(el("p", {}, "You hold no administrator permission in this organization."));
    return;
  }
  await open(state.tab || first[0]);
}

async function open(id) {
  state.tab = id;
  for (const button of $("tabs").querySelectorAll("button")) {
    if (button.id === `tab-${id}`) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  const panel = $("panel");
  panel.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  const render = TABS.find(([tab]) => tab === id)[3];
  try {
    panel.replaceChildren(...(await render()));
  } catch (err) {
    panel.replaceChildren(el("p", { class: "muted" }, "This section could not be loaded."));
    showError(err);
  }
}

const reload = () => open(state.tab);

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "None."))));
}

function input(name, label, attrs = {}) {
  return el("label", {}, label, el("input", { name, ...attrs }));
}

const value = (form, name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name)).value.trim();

// ---------------------------------------------------------------- organization

const METHODS = [
  ["passkey", "Passkeys"],
  ["magic_link", "Magic links"],
  ["email_code", "Email codes"],
  ["sms_code", "SMS codes"],
  ["password", "Passwords"],
];

async function renderOrganization() {
  const o = await state.auth.get(base());
  const s = o.settings || {};
  const branding = s.branding || {};
  const methods = s.sign_in_methods || {};
  const domains = may("sso:manage") ? await state.auth.get(`${base()}/domains`).catch(() => ({ items: [] })) : { items: [] };
  const proven = domains.items.filter((d) => d.verified).map((d) => d.domain);
  const form = el("form", { id: "org-form" },
    el("div", { class: "inline" },
      input("name", "Name", { value: o.name, required: true }),
      input("display_name", "Display name", { value: branding.display_name || "" }),
      input("primary_color", "Colour (#rrggbb)", { value: branding.primary_color || "", pattern: "#[0-9a-fA-F]{6}" }),
      input("logo_url", "Logo URL (https)", { value: branding.logo_url || "", type: "url" }),
      el("label", {}, "Second factor",
        el("select", { name: "mfa" }, ["off", "optional", "required"].map((m) =>
          el("option", { value: m, selected: (s.mfa || "optional") === m }, m)))),
      el("label", {}, "Login domain",
        el("select", { name: "login_domain" }, el("option", { value: "" }, "none"),
          proven.map((d) => el("option", { value: d, selected: s.login_domain === d }, d))))),
    el("fieldset", { id: "sign-in-methods" }, el("legend", {}, "Sign-in methods"),
      METHODS.map(([key, label]) => el("label", {},
        el("input", { type: "checkbox", name: `method-${key}`, checked: methods[key] !== false }), ` ${label} `))),
    el("button", { type: "submit" }, "Save"));
  form.addEventListener("submit", act(async () => {
    const checked = (key) => /** @type {HTMLInputElement} */ (form.elements.namedItem(`method-${key}`)).checked;
    const settings = {
      ...s,
      mfa: value(form, "mfa"),
      login_domain: value(form, "login_domain") || null,
      sign_in_methods: { ...methods, ...Object.fromEntries(METHODS.map(([key]) => [key, checked(key)])) },
      branding: {
        ...branding,
        display_name: value(form, "display_name") || null,
        primary_color: value(form, "primary_color") || null,
        logo_url: value(form, "logo_url") || null,
      },
    };
    await state.auth.patch(base(), { name: value(form, "name"), settings });
    showStatus("Saved.", "success");
    await reload();
  }));
  const parts = [el("h2", {}, o.name), el("p", { class: "muted" }, `Slug ${o.slug} · id ${o.id}`), form];
  if (may("sso:manage")) {
    const claim = el("form", { class: "inline", id: "domain-form" },
      input("domain", "Claim a domain", { required: true, placeholder: "login.example.com" }),
      el("button", { type: "submit" }, "Claim"));
    claim.addEventListener("submit", act(async () => {
      await state.auth.post(`${base()}/domains`, { domain: value(claim, "domain") });
      await reload();
    }));
    parts.push(el("h3", {}, "Domains"),
      el("p", { class: "muted" }, "Prove a domain with its DNS TXT record; a proven one can be the login domain."),
      table(["Domain", "TXT record", "State", ""], domains.items.map((d) => el("tr", {},
        el("td", {}, d.domain), el("td", {}, `${d.txt_name} = ${d.txt_value}`),
        el("td", {}, d.verified ? "proven" : "waiting for the record"),
        el("td", {}, d.verified ? "" : el("button", { type: "button", class: "secondary", onclick: act(async () => {
          await state.auth.post(`${base()}/domains/${enc(d.domain)}/verify`);
          await reload();
        }) }, "Check now"))))),
      claim);
  }
  if (may("organizations:read") && state.config.default) {
    // The installation's administrators: every organization.
    const all = await state.auth.get("/organizations?limit=100").catch(() => null);
    if (all) {
      parts.push(el("h3", {}, "Organizations"), table(["Name", "Slug", ""], all.items.map((x) =>
        el("tr", {}, el("td", {}, x.name), el("td", {}, x.slug),
          el("td", {}, el("a", { href: `/admin?org=${enc(x.slug)}` }, "Open"))))));
    }
  }
  return parts;
}

// ---------------------------------------------------------------- users

async function renderUsers() {
  const list = el("tbody");
  const search = el("input", { type: "search", id: "user-search", placeholder: "Search by email" });
  let cursor = null;
  let members = [];
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "More");
  const draw = () => {
    const q = /** @type {HTMLInputElement} */ (search).value.trim().toLowerCase();
    list.replaceChildren(...members
      .filter((m) => !q || (m.user.email || "").toLowerCase().includes(q) || (m.user.name || "").toLowerCase().includes(q))
      .map((m) => el("tr", { dataset: { email: m.user.email || "" } },
        el("td", {}, m.user.email || m.user.phone || m.user.id),
        el("td", {}, m.user.name || ""),
        el("td", {}, m.roles.join(", ")),
        el("td", {}, m.user.blocked ? "blocked" : "active"),
        el("td", {}, el("button", { type: "button", class: "secondary", onclick: act(() => showUser(m.user.id)) }, "Open")))));
  };
  const load = async () => {
    const page = await state.auth.get(`${base()}/members?limit=100${cursor ? `&cursor=${enc(cursor)}` : ""}`);
    members = members.concat(page.items);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    draw();
  };
  search.addEventListener("input", draw);
  more.addEventListener("click", act(load));
  await load();
  return [
    el("h2", {}, "Users"), search,
    el("table", { id: "users" }, el("thead", {}, el("tr", {}, ["Email", "Name", "Roles", "State", ""].map((h) => el("th", {}, h)))), list),
    more, el("div", { id: "user-detail" }),
  ];
}

async function showUser(id) {
  const detail = $("user-detail");
  const [member, roles, sessions] = await Promise.all([
    state.auth.get(`${base()}/members/${id}`),
    state.auth.get(`${base()}/roles`),
    state.auth.get(`/users/${id}/sessions`).catch(() => ({ items: [] })),
  ]);
  const u = member.user;
  const s = member.status;
  const roleBoxes = roles.items.map((r) => el("label", {},
    el("input", { type: "checkbox", name: "role", value: r.name, checked: member.roles.includes(r.name) }), ` ${r.name}`));
  const roleForm = el("form", { id: "roles-form" }, el("fieldset", {}, el("legend", {}, "Roles"), roleBoxes),
    el("button", { type: "submit" }, "Save roles"));
  roleForm.addEventListener("submit", act(async () => {
    const chosen = [...roleForm.querySelectorAll("input[name=role]:checked")].map((i) => /** @type {HTMLInputElement} */ (i).value);
    await state.auth.put(`/users/${id}/organizations/${org()}/roles`, { roles: chosen });
    showStatus("Roles saved.", "success");
    await showUser(id);
  }));
  const block = el("button", { type: "button", id: "block-user", onclick: act(async () => {
    await state.auth.put(`${base()}/members/${id}/blocked`, { blocked: !s.blocked });
    showStatus(s.blocked ? "Unblocked." : "Blocked: every session ended.", "success");
    await reload();
    await showUser(id);
  }) }, s.blocked ? "Unblock" : "Block");
  const remove = el("button", { type: "button", class: "secondary", onclick: act(async () => {
    await state.auth.delete(`${base()}/members/${id}`);
    showStatus("Removed from the organization.", "success");
    await reload();
  }) }, "Remove from organization");
  // Deleting an account is the installation's call (it ends every membership).
  const erase = state.config.default && may("users:write")
    ? el("button", { type: "button", class: "secondary", id: "delete-user", onclick: act(async () => {
      await state.auth.delete(`/users/${id}`);
      showStatus("Account deleted.", "success");
      await reload();
    }) }, "Delete account")
    : null;
  const sessionRows = sessions.items.map((x) => el("tr", {},
    el("td", {}, when(x.created_at)), el("td", {}, x.ip || ""), el("td", {}, x.user_agent || ""),
    el("td", {}, el("button", { type: "button", class: "secondary", onclick: act(async () => {
      await state.auth.delete(`/users/${id}/sessions/${x.id}`);
      await showUser(id);
    }) }, "End"))));
  const everywhere = el("button", { type: "button", class: "secondary", onclick: act(async () => {
    const r = await state.auth.delete(`/users/${id}/sessions`);
    showStatus(`${r.revoked} session(s) ended.`, "success");
    await showUser(id);
  }) }, "Sign out everywhere");
  detail.replaceChildren(el("div", { class: "card", id: "user-card" },
    el("h3", {}, u.email || u.phone || u.id),
    el("p", { id: "user-state" }, s.blocked ? "Blocked" : "Active",
      ` · email ${s.email_verified ? "verified" : "not verified"}`,
      ` · passkeys ${s.passkeys} · authenticator app ${s.totp ? "yes" : "no"} · backup codes ${s.backup_codes} · password ${s.password ? "yes" : "no"}`),
    u.name ? el("p", {}, `Name: ${u.name}`) : null,
    roleForm,
    el("div", { class: "row-actions" }, member.sole_organization || !s.blocked ? block : null, remove, erase),
    el("h4", {}, "Sessions in this organization"),
    table(["Signed in", "Address", "Browser", ""], sessionRows), everywhere));
}

// ---------------------------------------------------------------- roles and permissions

async function renderRoles() {
  const [roles, permissions] = await Promise.all([state.auth.get(`${base()}/roles`), state.auth.get(`${base()}/permissions`)]);
  const permForm = el("form", { class: "inline", id: "permission-form" },
    input("name", "New permission (resource:action)", { required: true, pattern: "[a-z0-9_]+:[a-z0-9_]+" }),
    el("button", { type: "submit" }, "Define"));
  permForm.addEventListener("submit", act(async () => {
    await state.auth.post(`${base()}/permissions`, { name: value(permForm, "name") });
    await reload();
  }));
  const roleForm = el("form", { id: "role-form" },
    el("fieldset", {}, el("legend", {}, "New role"),
      input("name", "Name", { required: true }),
      input("description", "Description"),
      el("div", {}, permissions.items.map((p) => el("label", {},
        el("input", { type: "checkbox", name: "permission", value: p.name }), ` ${p.name} `)))),
    el("button", { type: "submit" }, "Create role"));
  roleForm.addEventListener("submit", act(async () => {
    const chosen = [...roleForm.querySelectorAll("input[name=permission]:checked")].map((i) => /** @type {HTMLInputElement} */ (i).value);
    await state.auth.post(`${base()}/roles`, {
      name: value(roleForm, "name"), description: value(roleForm, "description") || undefined, permissions: chosen,
    });
    showStatus("Role created.", "success");
    await reload();
  }));
  return [
    el("h2", {}, "Roles"),
    el("table", { id: "roles" }, el("thead", {}, el("tr", {}, ["Role", "Permissions", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, roles.items.map((r) => el("tr", {},
        el("td", {}, r.name), el("td", {}, (r.permissions || []).join(", ")),
        el("td", {}, el("button", { type: "button", class: "secondary", onclick: act(async () => {
          await state.auth.delete(`${base()}/roles/${r.id}`);
          await reload();
        }) }, "Delete")))))),
    may("roles:write") ? roleForm : null,
    el("h2", {}, "Permissions"),
    table(["Permission", "Description"], permissions.items.map((p) => el("tr", {}, el("td", {}, p.name), el("td", {}, p.description || "")))),
    may("permissions:write") ? permForm : null,
  ];
}

// ---------------------------------------------------------------- apps

async function renderApps() {
  const apps = await state.auth.get(`${base()}/apps`);
  const out = el("div");
  const form = el("form", { class: "inline", id: "app-form" },
    input("name", "Name", { required: true }),
    input("redirect_uri", "Redirect URI", { required: true, type: "url" }),
    el("label", {}, "Server (has a secret)", el("input", { type: "checkbox", name: "confidential" })),
    el("button", { type: "submit" }, "Register app"));
  form.addEventListener("submit", act(async () => {
    const made = await state.auth.post(`${base()}/apps`, {
      name: value(form, "name"),
      redirect_uris: [value(form, "redirect_uri")],
      confidential: /** @type {HTMLInputElement} */ (form.elements.namedItem("confidential")).checked,
    });
    await reload();
    if (made.client_secret) {
      $("panel").prepend(el("p", { class: "secret" }, `Client secret of ${made.client_id}, shown once: ${made.client_secret}`));
    }
  }));
  out.append(table(["Name", "Client id", "Redirect URIs", ""], apps.items.map((a) => el("tr", {},
    el("td", {}, a.name), el("td", {}, a.client_id), el("td", {}, a.redirect_uris.join(" ")),
    el("td", {}, el("button", { type: "button", class: "secondary", onclick: act(async () => {
      await state.auth.delete(`/apps/${enc(a.client_id)}`);
      await reload();
    }) }, "Delete"))))));
  return [el("h2", {}, "Apps and client ids"), out, may("apps:write") ? form : null];
}

// ---------------------------------------------------------------- API credentials

async function renderKeys() {
  const keys = await state.auth.get(`${base()}/api-keys`);
  const form = el("form", { class: "inline", id: "key-form" },
    input("name", "Name", { required: true }),
    input("scopes", "Permissions (comma-separated)", { placeholder: "users:read, logs:read" }),
    el("button", { type: "submit" }, "Create credential"));
  form.addEventListener("submit", act(async () => {
    const scopes = value(form, "scopes").split(",").map((x) => x.trim()).filter(Boolean);
    const made = await state.auth.post(`${base()}/api-keys`, { name: value(form, "name"), scopes });
    await reload();
    $("panel").prepend(el("p", { class: "secret", id: "new-secret" }, `Copy it now, it is shown once: ${made.secret}`));
  }));
  return [
    el("h2", {}, "API credentials"),
    table(["Name", "Permissions", "Made", "Last used", "State", ""], keys.items.map((k) => el("tr", {},
      el("td", {}, k.name), el("td", {}, k.scopes.join(", ")), el("td", {}, when(k.created_at)),
      el("td", {}, when(k.last_used_at)), el("td", {}, k.revoked_at ? "revoked" : "active"),
      el("td", {}, k.revoked_at ? "" : el("button", { type: "button", class: "secondary", onclick: act(async () => {
        await state.auth.delete(`${base()}/api-keys/${k.id}`);
        await reload();
      }) }, "Revoke"))))),
    may("api_keys:write") ? form : null,
  ];
}

// ---------------------------------------------------------------- templates

async function renderTemplates() {
  const templates = await state.auth.get(`${base()}/templates`);
  const form = el("form", { id: "template-form" },
    el("div", { class: "inline" },
      el("label", {}, "Message", el("select", { name: "kind" }, templates.kinds.map((k) => el("option", { value: k }, k)))),
      input("locale", "Language (empty: any)", { placeholder: "de, pt-BR" })),
    el("div", { class: "inline" },
      input("subject", "Subject"), input("button", "Button label")),
    el("label", {}, "Before the code or button", el("textarea", { name: "intro", rows: 2 })),
    el("label", {}, "After it", el("textarea", { name: "outro", rows: 2 })),
    el("div", { class: "row-actions" },
      el("button", { type: "submit" }, "Save"),
      el("button", { type: "button", class: "secondary", id: "template-remove" }, "Back to the default")));
  const preview = el("div", { class: "preview", id: "preview" }, el("p", { class: "muted" }, "The preview shows here."));
  const wording = () => {
    const w = {};
    for (const name of ["subject", "intro", "outro", "button"]) {
      const v = value(form, name);
      if (v) w[name] = v;
    }
    return w;
  };
  const target = () => `${base()}/templates/${enc(value(form, "kind"))}${value(form, "locale") ? `?locale=${enc(value(form, "locale"))}` : ""}`;
  let timer = 0;
  let asked = 0;
  const refresh = () => {
    clearTimeout(timer);
    timer = window.setTimeout(async () => {
      const mine = ++asked;
      try {
        const kind = value(form, "kind");
        const locale = value(form, "locale");
        const p = await state.auth.post(`${base()}/templates/${enc(kind)}/preview${locale ? `?locale=${enc(locale)}` : ""}`, wording());
        if (mine !== asked) return;
        const frame = el("iframe", { sandbox: "", title: "HTML preview" });
        frame.setAttribute("srcdoc", p.html || "");
        preview.replaceChildren(
          el("p", {}, el("strong", {}, "Subject: "), el("span", { id: "preview-subject" }, p.subject)),
          el("pre", { id: "preview-text" }, p.text),
          p.html ? frame : null);
      } catch (err) {
        if (mine !== asked) return;
        preview.replaceChildren(el("p", { class: "muted", id: "preview-error" },
          err instanceof PortcullisError ? err.message : String(err)));
      }
    }, 250);
  };
  const fill = () => {
    const saved = templates.items.find((t) => t.kind === value(form, "kind") && (t.locale || "") === value(form, "locale").toLowerCase());
    for (const name of ["subject", "intro", "outro", "button"]) {
      /** @type {HTMLInputElement} */ (form.elements.namedItem(name)).value = (saved && saved[name]) || "";
    }
    refresh();
  };
  form.addEventListener("input", (event) => {
    const name = /** @type {HTMLInputElement} */ (event.target).name;
    if (name === "kind" || name === "locale") fill();
    else refresh();
  });
  form.addEventListener("change", (event) => {
    if (/** @type {HTMLInputElement} */ (event.target).name === "kind") fill();
  });
  form.addEventListener("submit", act(async () => {
    const saved = await state.auth.put(target(), wording());
    templates.items = saved.items;
    drawSaved();
    showStatus("Template saved.", "success");
  }));
  form.querySelector("#template-remove").addEventListener("click", act(async () => {
    await state.auth.delete(target());
    templates.items = templates.items.filter((t) => !(t.kind === value(form, "kind") && (t.locale || "") === value(form, "locale").toLowerCase()));
    drawSaved();
    fill();
  }));
  const savedList = el("div", { id: "saved-templates" });
  const drawSaved = () => savedList.replaceChildren(table(["Message", "Language", "Subject"], templates.items.map((t) =>
    el("tr", {}, el("td", {}, t.kind), el("td", {}, t.locale || "any"), el("td", {}, t.subject || "(default)")))));
  drawSaved();
  fill();
  return [el("h2", {}, "Email and SMS templates"),
    el("p", { class: "muted" }, "Plain words only: {{app_name}}, {{minutes}} and {{recipient}} may be named; the code, the link and every URL are the server's."),
    savedList, form, preview];
}

// ---------------------------------------------------------------- SSO

async function renderSso() {
  const connections = await state.auth.get(`${base()}/sso-connections`);
  const out = el("div", { id: "setup-link" });
  const make = el("button", { type: "button", onclick: act(async () => {
    const link = await state.auth.post(`${base()}/setup-links`, {});
    out.replaceChildren(el("p", { class: "secret" }, `Send this to the IT administrator (once): ${link.url || link.link || JSON.stringify(link)}`));
  }) }, "Create a setup link");
  return [el("h2", {}, "Single sign-on"),
    table(["Connection", "Kind", "State"], (connections.items || []).map((c) => el("tr", {},
      el("td", {}, c.name || c.issuer || c.id), el("td", {}, c.kind || ""), el("td", {}, c.status || "")))),
    make, out];
}

// ---------------------------------------------------------------- login log

const EVENT_KINDS = ["sign_in", "sign_in_failed", "sign_up", "sign_out", "mfa_challenged", "token_refreshed",
  "session_revoked", "rate_limited", "account_locked", "factor_added", "factor_removed", "password_changed",
  "user_blocked", "user_unblocked", "user_updated", "user_deleted", "ceremony_started", "admin_action",
  "ip_throttled", "suspicious_sign_in"];

async function renderLogs() {
  const form = el("form", { class: "inline", id: "log-filters" },
    el("label", {}, "Event", el("select", { name: "kind" }, el("option", { value: "" }, "any"),
      EVENT_KINDS.map((k) => el("option", { value: k }, k)))),
    input("user_id", "User id"), input("ip", "Address"),
    input("since", "From", { type: "datetime-local" }), input("until", "Until", { type: "datetime-local" }),
    el("button", { type: "submit" }, "Filter"));
  const rows = el("tbody");
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "More");
  const exportLink = el("a", { id: "log-export", download: "login-log.jsonl" }, "Export as JSON Lines");
  let cursor = null;
  const filters = () => {
    const q = new URLSearchParams();
    for (const name of ["kind", "user_id", "ip"]) if (value(form, name)) q.set(name, value(form, name));
    for (const name of ["since", "until"]) if (value(form, name)) q.set(name, String(new Date(value(form, name)).getTime()));
    return q;
  };
  const load = async (fresh) => {
    const q = filters();
    q.set("limit", "50");
    if (!fresh && cursor) q.set("cursor", cursor);
    const page = await state.auth.get(`${base()}/login-logs?${q}`);
    const lines = page.items.map((e) => el("tr", {},
      el("td", {}, when(e.at)), el("td", {}, e.kind), el("td", {}, e.user_id || ""), el("td", {}, e.method || ""),
      el("td", {}, e.reason || ""), el("td", {}, e.ip || ""), el("td", {}, e.user_agent || "")));
    if (fresh) rows.replaceChildren(...lines);
    else rows.append(...lines);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    const exportQuery = filters();
    exportLink.setAttribute("href", `/api/v1${base()}/login-logs/export?${exportQuery}`);
  };
  form.addEventListener("submit", act(() => load(true)));
  more.addEventListener("click", act(() => load(false)));
  await load(true);
  return [el("h2", {}, "Login log"), form,
    el("table", { id: "log" }, el("thead", {}, el("tr", {}, ["When", "Event", "User", "Method", "Reason", "Address", "Browser"].map((h) => el("th", {}, h)))), rows),
    more, el("p", {}, exportLink)];
}

// ------------------------------------------------------------------ start

async function boot() {
  wireSignIn();
  const slug = new URLSearchParams(location.search).get("org");
  const res = await fetch(`/admin/config.json${slug ? `?org=${enc(slug)}` : ""}`, { cache: "no-store" });
  const config = await res.json();
  if (!res.ok) {
    showStatus((config.error && config.error.message) || "This organization has no dashboard.", "error");
    return;
  }
  state.config = config;
  $("org-name").textContent = `· ${config.org_name}`;
  state.auth = createClient({ clientId: config.client_id, onSignedOut: () => showSignIn("Your session ended: sign in again.") });
  document.body.dataset.ready = "1";
  if (state.auth.signedIn()) {
    try {
      await enter();
      return;
    } catch (_) {
      // Ended meanwhile: sign in again.
    }
  }
  showSignIn();
}

boot().catch(showError);
