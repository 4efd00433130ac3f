// Unit tests of the SDK's pure parts: base64url, WebAuthn JSON, errors, configuration.
//   node --test test/

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  PortcullisError,
  base64urlToBuffer,
  bufferToBase64url,
  createClient,
  creationOptionsFromJSON,
  credentialToJSON,
  requestOptionsFromJSON,
} from "../portcullis.js";

const bytes = (...values) => new Uint8Array(values).buffer;

test("base64url round-trips every length and byte, unpadded", () => {
  for (let length = 0; length < 70; length++) {
    const data = new Uint8Array(length).map((_, i) => (i * 37 + length) & 0xff);
    const text = bufferToBase64url(data);
    assert.doesNotMatch(text, /[+/=]/);
    assert.deepEqual(new Uint8Array(base64urlToBuffer(text)), data);
  }
  assert.equal(bufferToBase64url(bytes(0xfb, 0xff)), "-_8");
  assert.deepEqual(new Uint8Array(base64urlToBuffer("-_8=")), new Uint8Array([0xfb, 0xff]));
  // A view into a larger buffer: only its own bytes.
  const view = new Uint8Array([1, 2, 3, 4]).subarray(1, 3);
  assert.equal(bufferToBase64url(view), bufferToBase64url(bytes(2, 3)));
});

test("text that is not base64url is a typed error", () => {
  for (const bad of ["a+b", "a/b", "ab c", "===a", 42]) {
    assert.throws(() => base64urlToBuffer(/** @type {any} */ (bad)), (err) =>
      err instanceof PortcullisError && err.code === "invalid_input");
  }
});

test("the server's options become what navigator.credentials takes", () => {
  const creation = creationOptionsFromJSON({
    challenge: "AQID",
    rp: { id: "localhost", name: "Demo" },
    user: { id: "BAU", name: "ann@example.com", displayName: "Ann" },
    pubKeyCredParams: [{ type: "public-key", alg: -8 }],
    excludeCredentials: [{ type: "public-key", id: "Bgc" }],
  });
  assert.deepEqual(new Uint8Array(creation.challenge), new Uint8Array([1, 2, 3]));
  assert.deepEqual(new Uint8Array(creation.user.id), new Uint8Array([4, 5]));
  assert.equal(creation.user.name, "ann@example.com");
  assert.deepEqual(new Uint8Array(creation.excludeCredentials[0].id), new Uint8Array([6, 7]));
  assert.equal(creation.rp.id, "localhost");
  const request = requestOptionsFromJSON({ challenge: "CAk", allowCredentials: [{ type: "public-key", id: "Cg" }] });
  assert.deepEqual(new Uint8Array(request.challenge), new Uint8Array([8, 9]));
  assert.deepEqual(new Uint8Array(request.allowCredentials[0].id), new Uint8Array([10]));
  const discoverable = requestOptionsFromJSON({ challenge: "CAk" });
  assert.equal(discoverable.allowCredentials, undefined);
});

test("a credential becomes the WebAuthn JSON the server takes", () => {
  const registration = credentialToJSON({
    id: "AQI",
    rawId: bytes(1, 2),
    type: "public-key",
    response: {
      clientDataJSON: bytes(123, 125),
      attestationObject: bytes(0xa0),
      getTransports: () => ["internal", "hybrid"],
    },
    getClientExtensionResults: () => ({ credProps: { rk: true } }),
  });
  assert.deepEqual(registration, {
    id: "AQI",
    rawId: "AQI",
    type: "public-key",
    response: { clientDataJSON: "e30", attestationObject: "oA", transports: ["internal", "hybrid"] },
    extensions: { credProps: { rk: true } },
  });
  const assertion = credentialToJSON({
    id: "AQI",
    rawId: bytes(1, 2),
    type: "public-key",
    response: {
      clientDataJSON: bytes(123, 125),
      authenticatorData: bytes(5),
      signature: bytes(6, 7),
      userHandle: null,
    },
  });
  assert.deepEqual(assertion.response, {
    clientDataJSON: "e30",
    authenticatorData: "BQ",
    signature: "Bgc",
    userHandle: null,
  });
  assert.deepEqual(assertion.extensions, {});
});

test("errors carry the API's code, status and retry time", () => {
  const err = new PortcullisError(429, "rate_limited", "slow down", { retryAfter: 30 });
  assert.ok(err instanceof Error);
  assert.equal(err.name, "PortcullisError");
  assert.equal(err.code, "rate_limited");
  assert.equal(err.status, 429);
  assert.equal(err.retryAfter, 30);
  assert.equal(err.challenge, false);
});

test("outside a browser the session is bearer tokens; cookie mode is refused", async () => {
  const client = createClient({ baseUrl: "http://127.0.0.1:9" });
  assert.equal(client.mode, "bearer");
  assert.equal(client.signedIn(), false);
  assert.throws(() => createClient({ baseUrl: "http://127.0.0.1:9", session: "cookie" }), (err) =>
    err instanceof PortcullisError && err.code === "config");
  // Nothing listens on port 9: a network error, typed.
  await assert.rejects(client.emailCode.send("ann@example.com"), (err) =>
    err instanceof PortcullisError && err.code === "network" && err.status === 0);
});
