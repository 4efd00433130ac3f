// @ts-check
/**
 * portcullis browser SDK: one ES module, no dependencies.
 *
 * Signs people in against a portcullis server (passkeys with conditional UI, magic links
 * with status polling and the device code, email and SMS codes, passwords, the MFA step
 * and enrolment), keeps the session (in HttpOnly cookies on the server's own site, or as
 * bearer tokens for other sites and for Node.js), refreshes it with one refresher across
 * tabs, and calls the rest of the API. Every refusal is a {@link PortcullisError} carrying
 * the API's stable `code`.
 *
 *     import { createClient } from "/sdk/portcullis.js";
 *     const auth = createClient();                  // same site: cookie session
 *     const sent = await auth.emailCode.send("ann@example.com");
 *     const result = await auth.emailCode.verify(sent.requestId, "123456");
 *     if (result.mfaRequired) await auth.mfa.verify(result.mfaToken, { code: "654321" });
 *     const me = await auth.status();
 *
 * Types are written as JSDoc and checked by `tsc` (`npm run check`); `npm run build`
 * emits the declarations (`dist/portcullis.d.ts`).
 *
 * @module portcullis
 */

/** The API's mount point on the server. */
export const API_PATH = "/api/v1";

/**
 * A refusal from the server (or the network), with the API's stable error code.
 */
export class PortcullisError extends Error {
  /**
   * @param {number} status HTTP status (0 when the server could not be reached).
   * @param {string} code The API's error code (`invalid_credentials`, `rate_limited`…).
   * @param {string} message A human-readable message.
   * @param {{retryAfter?: number | null, challenge?: boolean}} [extra]
   */
  constructor(status, code, message, extra = {}) {
    super(message);
    this.name = "PortcullisError";
    /** @type {number} */
    this.status = status;
    /** @type {string} */
    this.code = code;
    /** Seconds to wait before trying again, when the server said so. @type {number | null} */
    this.retryAfter = extra.retryAfter ?? null;
    /** Whether the access token itself was refused (`WWW-Authenticate: Bearer`). @type {boolean} */
    this.challenge = extra.challenge ?? false;
  }
}

// ------------------------------------------------------------------ base64url and WebAuthn JSON

/**
 * Bytes as unpadded base64url.
 * @param {ArrayBuffer | ArrayBufferView} buffer
 * @returns {string}
 */
export function bufferToBase64url(buffer) {
  const bytes = buffer instanceof ArrayBuffer
    ? new Uint8Array(buffer)
    : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let binary = "";
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Base64url (padded or not) as bytes. Throws a `PortcullisError` (`invalid_input`) for
 * text that is not base64url.
 * @param {string} text
 * @returns {ArrayBuffer}
 */
export function base64urlToBuffer(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*={0,2}$/.test(text)) {
    throw new PortcullisError(0, "invalid_input", "not base64url");
  }
  const plain = text.replace(/=+$/, "");
  const b64 = plain.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((plain.length + 3) % 4);
  let binary;
  try {
    binary = atob(b64);
  } catch (_) {
    throw new PortcullisError(0, "invalid_input", "not base64url");
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

/**
 * @param {any[] | undefined} list
 * @returns {any[] | undefined}
 */
function credentialDescriptors(list) {
  return Array.isArray(list) ? list.map((c) => ({ ...c, id: base64urlToBuffer(c.id) })) : list;
}

/**
 * The server's creation options (WebAuthn JSON) as `navigator.credentials.create` takes
 * them: challenge, user id and excluded credential ids as bytes.
 * @param {any} json `options.publicKey` of `GET /auth/passwordless/passkey/register`.
 * @returns {any} `PublicKeyCredentialCreationOptions`
 */
export function creationOptionsFromJSON(json) {
  const options = {
    ...json,
    challenge: base64urlToBuffer(json.challenge),
    user: { ...json.user, id: base64urlToBuffer(json.user.id) },
  };
  if (json.excludeCredentials) options.excludeCredentials = credentialDescriptors(json.excludeCredentials);
  return options;
}

/**
 * The server's request options (WebAuthn JSON) as `navigator.credentials.get` takes them.
 * @param {any} json `options.publicKey` of `GET /auth/passwordless/passkey/login`.
 * @returns {any} `PublicKeyCredentialRequestOptions`
 */
export function requestOptionsFromJSON(json) {
  const options = { ...json, challenge: base64urlToBuffer(json.challenge) };
  if (json.allowCredentials) options.allowCredentials = credentialDescriptors(json.allowCredentials);
  return options;
}

/**
 * A credential from `navigator.credentials.create` or `.get` as the WebAuthn JSON the
 * server takes (every byte string base64url).
 * @param {any} credential A `PublicKeyCredential`.
 * @returns {{id: string, rawId: string, type: string, response: Record<string, any>, extensions: Record<string, any>}}
 */
export function credentialToJSON(credential) {
  const r = credential.response;
  const registration = "attestationObject" in r;
  /** @type {Record<string, any>} */
  let response;
  if (registration) {
    response = {
      clientDataJSON: bufferToBase64url(r.clientDataJSON),
      attestationObject: bufferToBase64url(r.attestationObject),
    };
    if (typeof r.getTransports === "function") response.transports = r.getTransports();
  } else {
    response = {
      clientDataJSON: bufferToBase64url(r.clientDataJSON),
      authenticatorData: bufferToBase64url(r.authenticatorData),
      signature: bufferToBase64url(r.signature),
      userHandle: r.userHandle ? bufferToBase64url(r.userHandle) : null,
    };
  }
  let extensions = {};
  try {
    extensions = (typeof credential.getClientExtensionResults === "function"
      && credential.getClientExtensionResults()) || {};
  } catch (_) {
    extensions = {};
  }
  return {
    id: credential.id,
    rawId: bufferToBase64url(credential.rawId),
    type: credential.type,
    response,
    extensions: JSON.parse(JSON.stringify(extensions)),
  };
}

// ------------------------------------------------------------------ sign-in results

/**
 * What a sign-in step led to.
 * @typedef {object} SignInResult
 * @property {boolean} signedIn The session is open.
 * @property {string} [userId] Who signed in.
 * @property {boolean} [mfaRequired] A second factor is due: {@link Client.mfa}.verify.
 * @property {boolean} [mfaEnrollmentRequired] The organization requires MFA and the person
 *   has none: enrol with `mfa.enrollTotp({mfaToken})`.
 * @property {string} [mfaToken] Carries the half-finished sign-in to the MFA step.
 * @property {string[]} [methods] The second factors the person can use.
 * @property {boolean} [passwordChangeRequired] The password was found breached: send a new
 *   one with `password.changeRequired(changeToken, password)`.
 * @property {string} [changeToken]
 * @property {string} [code] An authorization code (redirect flows).
 */

/**
 * Token storage for bearer mode. Keys: `access`, `refresh`.
 * @typedef {object} TokenStorage
 * @property {(key: string) => (string | null)} get
 * @property {(key: string, value: string) => void} set
 * @property {(key: string) => void} remove
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} [baseUrl] The server's origin (default: this page's).
 * @property {string} [clientId] An app's client id: sign in in its organization.
 * @property {"cookie" | "bearer"} [session] Where the session lives: `cookie` (HttpOnly
 *   cookies; the page must be on the server's own origin) or `bearer` (tokens in
 *   `storage`). Default: `cookie` in a browser on the server's origin, else `bearer`.
 * @property {TokenStorage} [storage] Bearer mode's token store (default: `localStorage`
 *   under `portcullis.*` in a browser, memory elsewhere).
 * @property {typeof fetch} [fetch] The fetch to use.
 * @property {() => void} [onSignedOut] Called when the session ends under the caller
 *   (refresh refused, session revoked).
 */

/**
 * @typedef {object} RequestOptions
 * @property {any} [body] Sent as JSON.
 * @property {boolean} [auth] Send the session (default true).
 * @property {AbortSignal} [signal]
 * @property {Record<string, string>} [headers]
 */

/** @returns {TokenStorage} */
function memoryStorage() {
  /** @type {Map<string, string>} */
  const map = new Map();
  return {
    get: (key) => map.get(key) ?? null,
    set: (key, value) => void map.set(key, value),
    remove: (key) => void map.delete(key),
  };
}

/** @returns {TokenStorage} */
function localStorageTokens() {
  return {
    get: (key) => globalThis.localStorage.getItem("portcullis." + key),
    set: (key, value) => globalThis.localStorage.setItem("portcullis." + key, value),
    remove: (key) => globalThis.localStorage.removeItem("portcullis." + key),
  };
}

/**
 * @param {string} name
 * @returns {string | null}
 */
function readCookie(name) {
  if (typeof document === "undefined") return null;
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return rest.join("=") || null;
  }
  return null;
}

/**
 * @param {Uint8Array} digest
 * @returns {number}
 */
function zeroBits(digest) {
  let bits = 0;
  for (const byte of digest) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    bits += Math.clz32(byte) - 24;
    break;
  }
  return bits;
}

/**
 * @param {number} ms
 * @param {AbortSignal} [signal]
 */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason ?? new DOMException("aborted", "AbortError"));
    }, { once: true });
  });
}

/**
 * A client of one portcullis server.
 * @param {ClientOptions} [options]
 */
export function createClient(options = {}) {
  const inBrowser = typeof window !== "undefined" && typeof document !== "undefined";
  const baseUrl = (options.baseUrl ?? (inBrowser ? window.location.origin : "")).replace(/\/+$/, "");
  const sameOrigin = inBrowser && baseUrl === window.location.origin;
  const mode = options.session ?? (sameOrigin ? "cookie" : "bearer");
  if (mode === "cookie" && !sameOrigin) {
    throw new PortcullisError(0, "config", "cookie sessions need the page on the server's own origin");
  }
  const storage = options.storage
    ?? (inBrowser && mode === "bearer" ? localStorageTokens() : memoryStorage());
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const secureSite = baseUrl.startsWith("https:");
  const csrfCookie = secureSite ? "__Host-portcullis-csrf" : "portcullis-csrf";
  /** Set by a cookie sign-in in this tab; the cookie is the truth across tabs. */
  let csrfToken = /** @type {string | null} */ (null);

  const csrf = () => readCookie(csrfCookie) ?? csrfToken;

  /**
   * One call to the API: JSON in and out, the session attached, the bot check answered.
   * @param {string} method
   * @param {string} path Relative to `/api/v1` (or absolute from `/`, as `/oauth2/...`).
   * @param {RequestOptions & {botProof?: string}} [opts]
   * @returns {Promise<any>}
   */
  async function send(method, path, opts = {}) {
    /** @type {Record<string, string>} */
    const headers = { Accept: "application/json", ...(opts.headers ?? {}) };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    if (options.clientId) headers["X-Client-Id"] = options.clientId;
    if (opts.botProof) headers["X-Bot-Proof"] = opts.botProof;
    if (mode === "cookie") {
      headers["Portcullis-Session"] = "cookie";
      const token = csrf();
      if (token) headers["X-CSRF-Token"] = token;
    } else if (opts.auth !== false) {
      const access = storage.get("access");
      if (access) headers.Authorization = "Bearer " + access;
    }
    const url = baseUrl + (path.startsWith("/oauth2/") || path.startsWith("/.well-known/") ? path : API_PATH + path);
    let res;
    try {
      res = await doFetch(url, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        credentials: mode === "cookie" ? "same-origin" : "omit",
        cache: "no-store",
        signal: opts.signal,
      });
    } catch (err) {
      if (err && /** @type {any} */ (err).name === "AbortError") throw err;
      throw new PortcullisError(0, "network", "Could not reach the server.");
    }
    const text = res.status === 204 ? "" : await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = text;
      }
    }
    if (res.ok) return data;
    const error = (data && typeof data === "object" && data.error) || {};
    if (res.status === 428 && error.code === "bot_check_required" && !opts.botProof) {
      const proof = await proofOfWork(opts.signal);
      return send(method, path, { ...opts, botProof: proof });
    }
    const retry = res.headers.get("Retry-After");
    throw new PortcullisError(
      res.status,
      error.code || "http_" + res.status,
      error.message || `The server answered ${res.status}`,
      {
        retryAfter: retry && /^\d+$/.test(retry) ? Number(retry) : null,
        challenge: /^bearer/i.test(res.headers.get("WWW-Authenticate") ?? ""),
      },
    );
  }

  /**
   * The server's bot check, answered by proof of work: SHA-256 of `challenge:counter`
   * starting with `difficulty` zero bits.
   * @param {AbortSignal} [signal]
   */
  async function proofOfWork(signal) {
    const c = await send("GET", "/protection/challenge", { auth: false, signal });
    const encoder = new TextEncoder();
    for (let counter = 0; ; counter++) {
      const answer = `${c.challenge}:${counter}`;
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(answer)));
      if (zeroBits(digest) >= c.difficulty) return answer;
      if (signal?.aborted) throw new DOMException("aborted", "AbortError");
    }
  }

  /**
   * Keeps what a sign-in answered and says what it led to.
   * @param {any} answer
   * @returns {SignInResult}
   */
  function finish(answer) {
    const a = answer ?? {};
    if (a.token || a.session === "cookie") {
      if (mode === "bearer") {
        storage.set("access", a.token);
        if (a.refresh_token) storage.set("refresh", a.refresh_token);
      } else if (a.csrf_token) {
        csrfToken = a.csrf_token;
      }
      return { signedIn: true, userId: a.user_id };
    }
    return {
      signedIn: false,
      mfaRequired: a.mfa_required || undefined,
      mfaEnrollmentRequired: a.mfa_enrollment_required || undefined,
      mfaToken: a.mfa_token,
      methods: a.methods,
      passwordChangeRequired: a.password_change_required || undefined,
      changeToken: a.change_token,
      code: a.code,
    };
  }

  function forget() {
    storage.remove("access");
    storage.remove("refresh");
    csrfToken = null;
  }

  /** @type {Promise<void> | null} */
  let refreshing = null;

  /**
   * Rotates the session's refresh token. Refresh tokens are single use (a second use ends
   * the session), so every tab of this browser takes its turn under one Web Lock, and a
   * tab that waited finds the rotation done and uses its result.
   * @returns {Promise<void>}
   */
  function refresh() {
    if (refreshing) return refreshing;
    const seen = mode === "bearer" ? storage.get("refresh") : csrf();
    const rotate = async () => {
      const now = mode === "bearer" ? storage.get("refresh") : csrf();
      if (now !== seen) return; // another tab rotated it meanwhile
      if (mode === "bearer") {
        if (!now) throw new PortcullisError(401, "invalid_token", "Please sign in again.");
        finish(await send("POST", "/token/refresh", { auth: false, body: { refresh_token: now } }));
      } else {
        finish(await send("POST", "/token/refresh"));
      }
    };
    const locks = typeof navigator !== "undefined" ? /** @type {any} */ (navigator).locks : undefined;
    const run = locks ? locks.request("portcullis-refresh", rotate) : rotate();
    refreshing = Promise.resolve(run).finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  /**
   * A call with the session: when the access token itself is refused, one refresh and one
   * retry; a refused refresh ends the session here (`onSignedOut`).
   * @param {string} method
   * @param {string} path
   * @param {RequestOptions} [opts]
   */
  async function request(method, path, opts = {}) {
    try {
      return await send(method, path, opts);
    } catch (err) {
      if (!(err instanceof PortcullisError) || !err.challenge || opts.auth === false) throw err;
      if (err.code === "session_revoked") {
        forget();
        options.onSignedOut?.();
        throw err;
      }
      try {
        await refresh();
      } catch (refused) {
        if (refused instanceof PortcullisError && (refused.status === 400 || refused.status === 401)) {
          forget();
          options.onSignedOut?.();
        }
        throw err;
      }
      return send(method, path, opts);
    }
  }

  const query = (/** @type {Record<string, string | undefined>} */ params) => {
    const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null);
    return pairs.length ? "?" + new URLSearchParams(/** @type {[string, string][]} */ (pairs)).toString() : "";
  };

  /**
   * @param {string} kind `email-code` or `sms-code`
   * @param {string} field `email` or `phone`
   */
  const codeFlow = (kind, field) => ({
    /**
     * Sends a code. The answer looks the same whether or not an account exists.
     * @param {string} to
     * @returns {Promise<{requestId: string, expiresIn: number}>}
     */
    async send(to) {
      const r = await send("POST", `/auth/passwordless/${kind}`, { auth: false, body: { [field]: to } });
      return { requestId: r.request_id, expiresIn: r.expires_in };
    },
    /**
     * Sends the code of `requestId` again.
     * @param {string} requestId
     */
    async resend(requestId) {
      const r = await send("POST", `/auth/passwordless/${kind}/resend`, { auth: false, body: { request_id: requestId } });
      return { requestId: r.request_id ?? requestId, expiresIn: r.expires_in };
    },
    /**
     * Checks the code; signs in.
     * @param {string} requestId
     * @param {string} code
     * @returns {Promise<SignInResult>}
     */
    async verify(requestId, code) {
      return finish(await send("POST", `/auth/passwordless/${kind}/verify`, {
        auth: false,
        body: { request_id: requestId, code },
      }));
    },
  });

  /** @returns {boolean} */
  const webAuthn = () => typeof PublicKeyCredential !== "undefined" && typeof navigator !== "undefined"
    && !!navigator.credentials;

  const client = {
    /** Where the session lives. */
    mode,
    /** A call to the API with the session (see {@link RequestOptions}). */
    request,
    /** @param {string} path @param {RequestOptions} [opts] */
    get: (path, opts) => request("GET", path, opts),
    /** @param {string} path @param {any} [body] @param {RequestOptions} [opts] */
    post: (path, body, opts) => request("POST", path, { ...opts, body }),
    /** @param {string} path @param {any} [body] @param {RequestOptions} [opts] */
    put: (path, body, opts) => request("PUT", path, { ...opts, body }),
    /** @param {string} path @param {any} [body] @param {RequestOptions} [opts] */
    patch: (path, body, opts) => request("PATCH", path, { ...opts, body }),
    /** @param {string} path @param {RequestOptions} [opts] */
    delete: (path, opts) => request("DELETE", path, opts),
    refresh,

    /**
     * The current access token (bearer mode), for the page's own back end: send it as
     * `Authorization: Bearer` and verify it there against the server's JWKS. `null` in
     * cookie mode (the token stays in its HttpOnly cookie) and when signed out.
     * @returns {string | null}
     */
    accessToken() {
      return mode === "bearer" ? storage.get("access") : null;
    },

    /** Whether this browser holds a session (it may have ended on the server). */
    signedIn() {
      return mode === "bearer" ? !!storage.get("access") : !!csrf();
    },

    /** The signed-in person and session (`GET /auth/status`). */
    status() {
      return request("GET", "/auth/status");
    },

    /** Ends this session, here and on the server. */
    async signOut() {
      try {
        await request("POST", "/auth/logout");
      } finally {
        forget();
      }
    },

    emailCode: codeFlow("email-code", "email"),
    smsCode: codeFlow("sms-code", "phone"),

    magicLink: {
      /**
       * Emails a sign-in link. Keep `pollToken`: it lets {@link poll} sign this tab in when
       * the link is opened, and proves this browser to the link's page.
       * @param {string} email
       * @returns {Promise<{requestId: string, pollToken: string, deviceCode: string | null, expiresIn: number}>}
       */
      async send(email) {
        const r = await send("POST", "/auth/passwordless/magic-link", { auth: false, body: { email } });
        return { requestId: r.request_id, pollToken: r.poll_token, deviceCode: r.device_code ?? null, expiresIn: r.expires_in };
      },
      /**
       * Whether the link was opened: a {@link SignInResult} once it was, `null` while it
       * waits.
       * @param {string} requestId
       * @param {string} pollToken
       * @returns {Promise<SignInResult | null>}
       */
      async status(requestId, pollToken) {
        const r = await send("GET", "/auth/passwordless/magic-link/status" + query({ request_id: requestId, poll_token: pollToken }), { auth: false });
        if (r && r.status === "expired") throw new PortcullisError(410, "expired", "The link expired: ask for a new one.");
        if (r && (r.token || r.session === "cookie" || r.mfa_required || r.mfa_enrollment_required)) return finish(r);
        return null;
      },
      /**
       * Polls until the link is opened (or `signal` aborts).
       * @param {string} requestId
       * @param {string} pollToken
       * @param {{interval?: number, signal?: AbortSignal}} [opts]
       * @returns {Promise<SignInResult>}
       */
      async poll(requestId, pollToken, opts = {}) {
        for (;;) {
          const result = await client.magicLink.status(requestId, pollToken);
          if (result) return result;
          await sleep(opts.interval ?? 2000, opts.signal);
        }
      },
      /**
       * What the link's page shows before confirming: who asked, and whether the device
       * code is needed.
       * @param {string} token
       * @param {string} [pollToken]
       */
      peek(token, pollToken) {
        return send("GET", "/auth/passwordless/magic-link/verify" + query({ token, poll_token: pollToken }), { auth: false });
      },
      /**
       * Opens the link: signs in (with the device code when the link was opened in
       * another browser).
       * @param {{token: string, pollToken?: string, deviceCode?: string}} link
       * @returns {Promise<SignInResult>}
       */
      async verify(link) {
        return finish(await send("POST", "/auth/passwordless/magic-link/verify", {
          auth: false,
          body: { token: link.token, poll_token: link.pollToken, device_code: link.deviceCode },
        }));
      },
    },

    password: {
      /**
       * @param {string} email
       * @param {string} password
       * @returns {Promise<SignInResult>}
       */
      async signIn(email, password) {
        return finish(await send("POST", "/auth/password/login", { auth: false, body: { email, password } }));
      },
      /**
       * Makes an account; the answer asks for the emailed code (`verifySignUp`).
       * @param {string} email
       * @param {string} password
       */
      async signUp(email, password) {
        const r = await send("POST", "/auth/password/signup", { auth: false, body: { email, password } });
        return { requestId: r.request_id, expiresIn: r.expires_in };
      },
      /**
       * @param {string} requestId
       * @param {string} code
       * @returns {Promise<SignInResult>}
       */
      async verifySignUp(requestId, code) {
        return finish(await send("POST", "/auth/signup/verify", { auth: false, body: { request_id: requestId, code } }));
      },
      /**
       * Replaces a breached password at sign-in.
       * @param {string} changeToken
       * @param {string} password
       * @returns {Promise<SignInResult>}
       */
      async changeRequired(changeToken, password) {
        return finish(await send("POST", "/auth/password/change-required", {
          auth: false,
          body: { change_token: changeToken, new_password: password },
        }));
      },
    },

    passkeys: {
      /** Whether this browser can use passkeys at all. */
      supported: webAuthn,
      /** Whether it offers passkeys in the username field's autofill (conditional UI). */
      async conditionalAvailable() {
        const pkc = /** @type {any} */ (globalThis).PublicKeyCredential;
        return webAuthn() && typeof pkc.isConditionalMediationAvailable === "function"
          && (await pkc.isConditionalMediationAvailable());
      },
      /**
       * Signs in with a passkey: a modal prompt, or with `conditional` the autofill of an
       * input with `autocomplete="username webauthn"` (resolves when the person picks one;
       * abort with `signal` before starting a modal one).
       * @param {{conditional?: boolean, signal?: AbortSignal}} [opts]
       * @returns {Promise<SignInResult>}
       */
      async signIn(opts = {}) {
        const ceremony = await send("GET", "/auth/passwordless/passkey/login", { auth: false, signal: opts.signal });
        const credential = await navigator.credentials.get({
          publicKey: requestOptionsFromJSON(ceremony.options.publicKey),
          mediation: opts.conditional ? /** @type {any} */ ("conditional") : undefined,
          signal: opts.signal,
        });
        if (!credential) throw new PortcullisError(0, "cancelled", "No passkey was chosen.");
        return finish(await send("POST", "/auth/passwordless/passkey/login" + query({ auth_code: ceremony.auth_code }), {
          auth: false,
          body: { passkey: credentialToJSON(credential) },
        }));
      },
      /**
       * Makes a passkey: for a new account (`email`), or for the signed-in person.
       * A new account's answer may ask for the emailed code (`requestId`).
       * @param {{email?: string, name?: string}} [opts]
       * @returns {Promise<SignInResult & {requestId?: string}>}
       */
      async register(opts = {}) {
        const path = "/auth/passwordless/passkey/register";
        const ceremony = opts.email
          ? await send("GET", path + query({ identifier: opts.email }), { auth: false })
          : await request("GET", path);
        const credential = await navigator.credentials.create({ publicKey: creationOptionsFromJSON(ceremony.options.publicKey) });
        if (!credential) throw new PortcullisError(0, "cancelled", "No passkey was made.");
        const body = { passkey: credentialToJSON(credential), name: opts.name };
        const url = path + query({ auth_code: ceremony.auth_code });
        const answer = opts.email ? await send("POST", url, { auth: false, body }) : await request("POST", url, { body });
        if (answer && answer.request_id) return { signedIn: false, requestId: answer.request_id };
        return answer && (answer.token || answer.session || answer.mfa_required) ? finish(answer) : { signedIn: client.signedIn() };
      },
      /** The signed-in person's passkeys. */
      list() {
        return request("GET", "/auth/passkeys");
      },
      /** @param {string} id @param {string} name */
      rename(id, name) {
        return request("PATCH", `/auth/passkeys/${encodeURIComponent(id)}`, { body: { name } });
      },
      /** @param {string} id */
      remove(id) {
        return request("DELETE", `/auth/passkeys/${encodeURIComponent(id)}`);
      },
    },

    mfa: {
      /**
       * Answers the MFA step of a sign-in.
       * @param {string} mfaToken
       * @param {{code: string, method?: string}} answer `method`: `totp` (default),
       *   `backup_code`, `sms`, `email`.
       * @returns {Promise<SignInResult>}
       */
      async verify(mfaToken, answer) {
        const method = answer.method ?? "totp";
        const body = method === "backup_code"
          ? { mfa_token: mfaToken, backup_code: answer.code }
          : { mfa_token: mfaToken, code: answer.code, method };
        return finish(await send("POST", "/mfa/verify", { auth: false, body }));
      },
      /**
       * Sends the MFA step's code by SMS or email.
       * @param {string} mfaToken
       * @param {"sms" | "email"} method
       */
      challenge(mfaToken, method) {
        return send("POST", "/mfa/challenge", { auth: false, body: { mfa_token: mfaToken, method } });
      },
      /**
       * Starts enrolling an authenticator app: for the signed-in person, or with the
       * `mfaToken` of a sign-in that requires it. Answers the secret and the otpauth URI.
       * @param {{mfaToken?: string}} [opts]
       */
      enrollTotp(opts = {}) {
        return opts.mfaToken
          ? send("POST", "/mfa/totp/enroll", { auth: false, body: { mfa_token: opts.mfaToken } })
          : request("POST", "/mfa/totp/enroll", { body: {} });
      },
      /**
       * Confirms the app with its first code; answers the backup codes (and, for a
       * sign-in's enrolment, signs in).
       * @param {string} code
       * @param {{mfaToken?: string}} [opts]
       */
      async confirmTotp(code, opts = {}) {
        if (opts.mfaToken) {
          const answer = await send("POST", "/mfa/totp/confirm", { auth: false, body: { mfa_token: opts.mfaToken, code } });
          return { ...answer, ...finish(answer) };
        }
        return request("POST", "/mfa/totp/confirm", { body: { code } });
      },
      /** The signed-in person's authenticators. */
      authenticators() {
        return request("GET", "/mfa/authenticators");
      },
      /** @param {string} id */
      remove(id) {
        return request("DELETE", `/mfa/authenticators/${encodeURIComponent(id)}`);
      },
      /** New backup codes (the old ones stop working). */
      backupCodes() {
        return request("POST", "/mfa/backup-codes", { body: {} });
      },
    },
  };
  return client;
}

/** @typedef {ReturnType<typeof createClient>} Client */
