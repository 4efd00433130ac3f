#!/usr/bin/env python3
"""A relying party built on Authlib, driven over stdin/stdout by portcullis's OP tests.

Usage: rp.py '<json config>'   (the protocol is in README.md beside this file)

stdout carries the protocol alone, one JSON object per line: {"authorize": url}, then the
final result. Everything else goes to stderr. The driver reads one line from stdin,
{"callback": url}, after printing the authorization URL.

The OAuth side is Authlib's requests client (OAuth2Session); ID tokens are checked the way
Authlib's own OpenID client checks them (joserfc's jwt.decode against the discovered JWKS,
then authlib.oidc.core.CodeIDToken), with aud and iss pinned here, as Authlib leaves aud to
the caller.
"""

from __future__ import annotations

import base64
import json
import sys
import warnings
from urllib.parse import parse_qs, urlsplit, urlunsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken, UserInfo
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
LEEWAY = 60  # seconds of clock skew allowed on exp/iat/nbf
TIMEOUT = 30  # seconds per HTTP request


class Failure(Exception):
    """A step failed: carries the message for the final {"ok": false} line."""


def log(*parts):
    print("rp.py:", *parts, file=sys.stderr, flush=True)


# joserfc warns (SecurityWarning) on every use of EdDSA, which RFC 9864 deprecates in favour
# of Ed25519: say each warning once, on stderr, as a diagnostic like the others.
warnings.simplefilter("once")
warnings.showwarning = lambda message, category, *_args, **_kw: log(
    f"warning: {category.__name__}: {message}")


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def describe(err: BaseException) -> str:
    if isinstance(err, OAuthError):
        text = f"{err.error}"
        if err.description:
            text += f": {err.description}"
        return text
    if isinstance(err, JoseError):
        return f"{type(err).__name__}: {err.error}: {err.description or ''}".rstrip(": ")
    return f"{type(err).__name__}: {err}"


def read_config(argv):
    if len(argv) != 2:
        raise Failure("usage: rp.py '<json config>'")
    config = json.loads(argv[1])
    if not isinstance(config, dict):
        raise Failure("config must be a JSON object")
    for key in ("issuer", "client_id", "redirect_uri"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise Failure(f"config.{key} must be a non-empty string")
    method = config.setdefault("auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise Failure(f"config.auth_method must be one of {', '.join(AUTH_METHODS)}")
    secret = config.get("client_secret")
    if method == "none":
        config["client_secret"] = None
    elif not isinstance(secret, str) or not secret:
        raise Failure(f"config.client_secret is required for {method}")
    config.setdefault("scope", "openid")
    config.setdefault("id_token_alg", None)
    extra = config.setdefault("authorize_params", {})
    if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
        raise Failure("config.authorize_params must be an object of strings")
    return config


def discover(session, issuer):
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    resp = session.get(url, withhold_token=True, timeout=TIMEOUT)
    if resp.status_code != 200:
        raise Failure(f"GET {url}: HTTP {resp.status_code}")
    metadata = resp.json()
    if not isinstance(metadata, dict):
        raise Failure("discovery document is not a JSON object")
    # OpenID Connect Discovery 1.0, section 4.3: exactly the issuer asked for.
    if metadata.get("issuer") != issuer:
        raise Failure(f"discovery issuer {metadata.get('issuer')!r} is not {issuer!r}")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(metadata.get(key), str):
            raise Failure(f"discovery has no {key}")
    # Authlib's own metadata checks, for information only: they demand https and RS256
    # among the ID token algorithms, which a loopback, EdDSA-only OP does not meet.
    try:
        OpenIDProviderMetadata(metadata).validate()
    except ValueError as err:
        log(f"note: Authlib's OpenIDProviderMetadata.validate() objects: {err}")
    return metadata


class IdTokenValidator:
    """Checks ID tokens as Authlib's OpenIDMixin.parse_id_token does, plus aud."""

    def __init__(self, session, config, metadata):
        self.session = session
        self.config = config
        self.metadata = metadata
        self.jwks = None
        algs = [config["id_token_alg"]] if config["id_token_alg"] else \
            metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        self.registry = JWSRegistry(algorithms=algs, strict_check_header=False)

    def fetch_jwks(self):
        resp = self.session.get(self.metadata["jwks_uri"], withhold_token=True, timeout=TIMEOUT)
        if resp.status_code != 200:
            raise Failure(f"GET {self.metadata['jwks_uri']}: HTTP {resp.status_code}")
        self.jwks = KeySet.import_key_set(resp.json())

    def validate(self, id_token, *, nonce, access_token, max_age=None):
        if self.jwks is None:
            self.fetch_jwks()
        try:
            token = jwt.decode(id_token, self.jwks, registry=self.registry)
        except InvalidKeyIdError:
            log("ID token kid not in the cached JWKS: fetching it again")
            self.fetch_jwks()
            token = jwt.decode(id_token, self.jwks, registry=self.registry)
        options = {
            "iss": {"essential": True, "value": self.metadata["issuer"]},
            "aud": {"essential": True, "value": self.config["client_id"]},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "iat": {"essential": True},
        }
        params = {"client_id": self.config["client_id"], "access_token": access_token}
        if max_age is not None:
            params["max_age"] = int(max_age)  # then auth_time is required
        if nonce is not None:
            options["nonce"] = {"essential": True, "value": nonce}
            params["nonce"] = nonce
        # CodeIDToken: iss/sub/aud/exp/iat present, exp/iat/nbf timing, nonce, azp, amr
        # type, auth_time type and at_hash (when the token has one) against the access token.
        claims = CodeIDToken(token.claims, token.header, options, params)
        claims.validate(leeway=LEEWAY)
        log(f"ID token valid: alg={token.header.get('alg')} kid={token.header.get('kid')} "
            f"at_hash {'valid' if 'at_hash' in token.claims else 'absent'}")
        return dict(claims)


def check_callback(callback, config, metadata, state):
    parts = urlsplit(callback)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    if base != config["redirect_uri"]:
        raise Failure(f"callback {base!r} is not the redirect_uri {config['redirect_uri']!r}")
    params = parse_qs(parts.query, keep_blank_values=True)
    for name, values in params.items():
        if len(values) != 1:
            raise Failure(f"callback repeats the {name} parameter")
    params = {k: v[0] for k, v in params.items()}
    # RFC 9207: an iss that is there must be the issuer; it must be there if announced.
    iss = params.get("iss")
    if iss is not None and iss != metadata["issuer"]:
        raise Failure(f"callback iss {iss!r} is not the issuer {metadata['issuer']!r}")
    if iss is None and metadata.get("authorization_response_iss_parameter_supported"):
        raise Failure("callback has no iss although discovery announces it (RFC 9207)")
    if params.get("state") != state:
        raise Failure("callback state does not match")
    if "error" in params:
        raise Failure(f"authorization error {params['error']}: {params.get('error_description', '')}")
    if "code" not in params:
        raise Failure("callback has no code")


def run(config, out):
    stage = "discovery"
    try:
        session = OAuth2Session(
            client_id=config["client_id"],
            client_secret=config["client_secret"],
            token_endpoint_auth_method=config["auth_method"],
            revocation_endpoint_auth_method=config["auth_method"],
            scope=config["scope"],
            redirect_uri=config["redirect_uri"],
            code_challenge_method="S256",
            default_timeout=TIMEOUT,
        )
        first_response = {}

        def keep_token_response(resp):
            # The raw token endpoint answer: Authlib's token dict adds expires_at.
            if not first_response:
                try:
                    first_response["keys"] = sorted(resp.json().keys())
                except ValueError:
                    first_response["keys"] = []
                log(f"token response: HTTP {resp.status_code} "
                    f"content-type={resp.headers.get('content-type')!r} "
                    f"cache-control={resp.headers.get('cache-control')!r}")
            return resp

        session.register_compliance_hook("access_token_response", keep_token_response)

        metadata = discover(session, config["issuer"])
        validator = IdTokenValidator(session, config, metadata)

        stage = "authorize"
        code_verifier = generate_token(64)
        state = generate_token(32)
        nonce = generate_token(32)
        url, _ = session.create_authorization_url(
            metadata["authorization_endpoint"],
            state=state,
            code_verifier=code_verifier,
            nonce=nonce,
            **config["authorize_params"],
        )
        emit({"authorize": url})

        stage = "callback"
        line = sys.stdin.readline()
        if not line:
            raise Failure("stdin closed before the callback line")
        callback = json.loads(line).get("callback")
        if not isinstance(callback, str):
            raise Failure('expected {"callback": "<url>"}')
        check_callback(callback, config, metadata, state)

        stage = "token"
        token = session.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback,
            state=state,
            code_verifier=code_verifier,
        )
        if token.get("token_type", "").lower() != "bearer":
            raise Failure(f"token_type {token.get('token_type')!r} is not Bearer")
        if "id_token" not in token:
            raise Failure("token response has no id_token")

        stage = "id_token"
        id_claims = validator.validate(
            token["id_token"], nonce=nonce, access_token=token["access_token"],
            max_age=config["authorize_params"].get("max_age"))
        out["id_token_claims"] = id_claims
        out["token_response_keys"] = first_response.get("keys", [])

        access_token = token["access_token"]
        refresh_token = token.get("refresh_token")
        out["refreshed"] = False
        out["refreshed_id_token_claims"] = None
        if refresh_token:
            stage = "refresh"
            refreshed = session.refresh_token(
                metadata["token_endpoint"], refresh_token=refresh_token)
            out["refreshed"] = True
            access_token = refreshed["access_token"]
            if refreshed.get("id_token"):
                stage = "refreshed_id_token"
                claims = validator.validate(
                    refreshed["id_token"],
                    # OIDC Core 12.2: a nonce on a refreshed ID token is the original one.
                    nonce=nonce if "nonce" in _unverified_claims(refreshed["id_token"]) else None,
                    access_token=access_token,
                )
                for name in ("iss", "sub", "aud", "auth_time"):
                    if name in id_claims and claims.get(name) != id_claims[name]:
                        raise Failure(f"refreshed ID token changes {name}")
                out["refreshed_id_token_claims"] = claims
            # A rotated refresh token replaces the old one (Authlib keeps the old otherwise).
            refresh_token = refreshed.get("refresh_token") or refresh_token
        else:
            log("no refresh token issued")

        stage = "userinfo"
        if not metadata.get("userinfo_endpoint"):
            raise Failure("discovery has no userinfo_endpoint")
        resp = session.get(metadata["userinfo_endpoint"], timeout=TIMEOUT)
        if resp.status_code != 200:
            raise Failure(f"userinfo: HTTP {resp.status_code} "
                          f"www-authenticate={resp.headers.get('www-authenticate')!r}")
        userinfo = UserInfo(resp.json())
        # OIDC Core 5.3.4: the UserInfo sub must be the ID token's.
        if userinfo.get("sub") != id_claims["sub"]:
            raise Failure(f"userinfo sub {userinfo.get('sub')!r} is not {id_claims['sub']!r}")
        out["userinfo"] = dict(userinfo)

        stage = "revoke"
        if not metadata.get("revocation_endpoint"):
            raise Failure("discovery has no revocation_endpoint")
        revoked, hint = (refresh_token, "refresh_token") if refresh_token else \
            (access_token, "access_token")
        resp = session.revoke_token(
            metadata["revocation_endpoint"], token=revoked, token_type_hint=hint,
            timeout=TIMEOUT)
        if resp.status_code != 200:
            raise Failure(f"revocation: HTTP {resp.status_code} {resp.text[:200]}")
        out["revoked"] = True
        out["revoked_token_type_hint"] = hint

        stage = "refresh_after_revoke"
        out["refresh_after_revoke_error"] = None
        if refresh_token:
            try:
                session.refresh_token(metadata["token_endpoint"], refresh_token=refresh_token)
            except OAuthError as err:
                out["refresh_after_revoke_error"] = err.error
                log(f"refresh after revocation refused: {describe(err)}")
            else:
                raise Failure("the revoked refresh token was accepted")
        else:
            # What the revoked access token now gets at UserInfo: for information only.
            resp = session.get(metadata["userinfo_endpoint"], timeout=TIMEOUT)
            out["userinfo_after_revoke_status"] = resp.status_code
    except Failure as err:
        return stage, str(err)
    except (OAuthError, JoseError, ValueError, KeyError, TypeError, requests.RequestException) as err:
        return stage, describe(err)
    return None


def _unverified_claims(id_token):
    """The payload of a JWS, read only to decide whether to expect a nonce."""
    payload = id_token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def main(argv):
    try:
        config = read_config(argv)
    except (Failure, ValueError) as err:
        emit({"ok": False, "error": str(err), "stage": "config"})
        return 2
    out = {"ok": True}
    failed = run(config, out)
    if failed:
        stage, message = failed
        log(f"failed at {stage}: {message}")
        emit({"ok": False, "error": message, "stage": stage})
        return 1
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
