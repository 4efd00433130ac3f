//! Access tokens as JWTs (RFC 9068): the claims, signing, and a verifier that trusts
//! nothing in a token until its signature checks out under a key we hold.

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

use super::keys::{KeySet, SigningKey};
use crate::crypto::{b64url, b64url_decode};
use crate::model::{OrgId, Permission, SessionId, UserId};
use crate::{Error, Timestamp};

/// The `typ` header of every access token (RFC 9068 §2.1).
pub(crate) const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the engine's configured issuer.
    pub iss: String,
    /// Subject: the user.
    pub sub: UserId,
    /// Audience.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Unique token id.
    pub jti: String,
    /// The session the token belongs to.
    pub sid: SessionId,
    /// The organization the session runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgId>,
    /// Role names held in that organization.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Permissions those roles grant.
    #[serde(default)]
    pub perms: Vec<Permission>,
    /// The roles and permissions were too many for a token (the claims would pass
    /// [`MAX_CLAIMS_BYTES`](crate::tokens::MAX_CLAIMS_BYTES)) and were left out: ask
    /// [`Rbac::check`](crate::Rbac::check) instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub perms_omitted: bool,
    /// Authentication methods used (RFC 8176: `pwd`, `otp`, `hwk`, `swk`, `user`, `mfa`,
    /// and `email` / `sms` for one-time codes and links).
    #[serde(default)]
    pub amr: Vec<String>,
    /// Assurance reached: `aal1` or `aal2` (NIST SP 800-63B).
    pub acr: String,
    /// The revision of the organization's roles and of the subject's membership the
    /// token's `roles` and `perms` were read at (absent while neither changed lately).
    /// [`Tokens::verify_live`](crate::tokens::Tokens::verify_live) refuses a token whose
    /// revision is no longer current; refreshing signs one with the roles held now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// The client of the OpenID provider the token was issued to (RFC 9068 §2.2); absent
    /// for the API's own sign-ins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<crate::model::ClientId>,
    /// The scopes granted to that client, space-separated (RFC 9068 §2.2.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Orders `held` against the name `{resource}:*`, without building it. Byte by byte:
/// names mostly differ in their first bytes, where a loop beats a call to `memcmp`.
fn cmp_wildcard(held: &str, resource: &str) -> std::cmp::Ordering {
    let (held, resource) = (held.as_bytes(), resource.as_bytes());
    for (h, r) in held.iter().zip(resource) {
        if h != r {
            return h.cmp(r);
        }
    }
    match held.get(resource.len()..) {
        Some(tail) => tail.cmp(b":*".as_slice()),
        None => std::cmp::Ordering::Less,
    }
}

impl Claims {
    /// Whether the token's permissions grant `permission` (`invoices:write`; a held
    /// `invoices:*` grants it too). No I/O, no allocation, one binary search: the engine
    /// signs the permissions sorted, where a resource's names sit together with
    /// `{resource}:*` first (`*` sorts before every character an action may hold), so the
    /// search lands on the wildcard or on the resource's first action, and the action is
    /// looked for among that resource's names only. A token with unsorted permissions may be
    /// refused one, never granted one it lacks. An unparsable name is never granted.
    pub fn has_permission(&self, permission: &str) -> bool {
        let Some((resource, action)) = permission.split_once(':') else {
            return false;
        };
        let start = self
            .perms
            .partition_point(|held| cmp_wildcard(held.as_str(), resource).is_lt());
        let mut actions = self.perms[start..].iter().map_while(|held| {
            held.as_str()
                .strip_prefix(resource)
                .and_then(|rest| rest.strip_prefix(':'))
        });
        match actions.next() {
            None => false,
            // Held names are valid (checked when the token was read), so the resource is: only
            // the action of a name the wildcard matches is still to check.
            Some("*") => Permission::is_valid_action(action),
            Some(first) => {
                first == action
                    || actions
                        .take_while(|held| *held <= action)
                        .any(|held| held == action)
            }
        }
    }

    /// Whether the token carries role `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// When the token expires.
    pub fn expires_at(&self) -> Timestamp {
        Timestamp::from_unix_secs(self.exp)
    }
}

/// Signs `claims` with `key`.
pub(crate) fn sign(key: &SigningKey, claims: &Claims) -> Result<String, Error> {
    sign_typed(key, ACCESS_TOKEN_TYP, claims)
}

/// Signs any claims with `typ` (`JWT` for an ID token, so that one is never taken for an
/// access token, and the other way round).
pub(crate) fn sign_typed<T: Serialize>(
    key: &SigningKey,
    typ: &str,
    claims: &T,
) -> Result<String, Error> {
    /// The protected header, members in jsonwebtoken's order (its tokens and ours are
    /// the same bytes).
    #[derive(Serialize)]
    struct Protected<'a> {
        typ: &'a str,
        alg: &'a str,
        kid: &'a str,
    }
    let header = Protected {
        typ,
        alg: key.algorithm.as_str(),
        kid: &key.kid,
    };
    let encode = |json: serde_json::Result<Vec<u8>>| {
        json.map(|bytes| b64url(&bytes))
            .map_err(|_| Error::Internal("signing a token"))
    };
    let mut token = encode(serde_json::to_vec(&header))?;
    token.push('.');
    token.push_str(&encode(serde_json::to_vec(claims))?);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64url(&signature));
    Ok(token)
}

/// What verification needs besides the keys.
pub(crate) struct Expect<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) audience: &'a str,
}

/// The outcome of checking a token's framing and header, before its signature.
pub(crate) enum Parsed<'t> {
    /// Signed by a key we hold: check the signature over `message`.
    Known {
        key: std::sync::Arc<SigningKey>,
        algorithm: Algorithm,
        message: &'t str,
        payload: &'t str,
        signature: &'t str,
    },
    /// Well formed, but names a key we do not hold (yet: it may be another instance's).
    UnknownKid,
}

/// Checks size, framing and header. Everything that can be refused without a signature
/// check is refused here: oversized tokens, `alg` other than the key set's (so `none` in
/// any case, and HMAC algorithms that would take a public key as their secret), a missing
/// or wrong `typ`, a missing `kid`, and any header that points at keys elsewhere (`jku`,
/// `jwk`, `x5u`, `x5c`) or asks for extensions (`crit`): our tokens carry none of them.
pub(crate) fn parse<'t>(token: &'t str, keys: &KeySet) -> Result<Parsed<'t>, Error> {
    parse_typed(token, keys, ACCESS_TOKEN_TYP)
}

/// [`parse`] for a token of another `typ` (`JWT`: an ID token of ours).
pub(crate) fn parse_typed<'t>(
    token: &'t str,
    keys: &KeySet,
    expected_typ: &str,
) -> Result<Parsed<'t>, Error> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::InvalidToken);
    }
    let (message, signature) = token.rsplit_once('.').ok_or(Error::InvalidToken)?;
    let (header_b64, payload) = message.split_once('.').ok_or(Error::InvalidToken)?;
    if payload.contains('.') {
        return Err(Error::InvalidToken);
    }
    let header_json = b64url_decode(header_b64).ok_or(Error::InvalidToken)?;
    let header: RawHeader =
        serde_json::from_slice(&header_json).map_err(|_| Error::InvalidToken)?;
    let algorithm = match header.alg.as_str() {
        "EdDSA" => Algorithm::EdDSA,
        "ES256" => Algorithm::ES256,
        _ => return Err(Error::InvalidToken),
    };
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(expected_typ)
            || t.eq_ignore_ascii_case(&format!("application/{expected_typ}"))
    });
    let foreign = header.jku.is_some()
        || header.jwk.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some();
    if !typ_ok || foreign {
        return Err(Error::InvalidToken);
    }
    let kid = header.kid.ok_or(Error::InvalidToken)?;
    let Some(key) = keys.find(&kid) else {
        return Ok(Parsed::UnknownKid);
    };
    if key.jws_algorithm() != algorithm {
        return Err(Error::InvalidToken);
    }
    Ok(Parsed::Known {
        key: key.clone(),
        algorithm,
        message,
        payload,
        signature,
    })
}

/// A token whose signature, issuer and audience checked out, and the key that signed it.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) claims: Claims,
    pub(crate) kid: String,
}

/// Checks the signature, then decodes the claims and checks issuer and audience. Time is
/// checked by the caller against the engine's clock.
pub(crate) fn verify(parsed: Parsed<'_>, expect: &Expect<'_>) -> Result<Verified, Error> {
    let (payload, kid) = signed_payload(parsed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| Error::InvalidToken)?;
    if claims.iss != expect.issuer || claims.aud != expect.audience {
        return Err(Error::InvalidToken);
    }
    Ok(Verified { claims, kid })
}

/// The payload of a token whose signature checks out under the key [`parse_typed`] found
/// for it, and that key's kid.
fn signed_payload(parsed: Parsed<'_>) -> Result<(Vec<u8>, String), Error> {
    let Parsed::Known {
        key,
        algorithm,
        message,
        payload,
        signature,
    } = parsed
    else {
        return Err(Error::InvalidToken);
    };
    let valid =
        jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key.decoding, algorithm)
            .unwrap_or(false);
    if !valid {
        return Err(Error::InvalidToken);
    }
    let payload = b64url_decode(payload).ok_or(Error::InvalidToken)?;
    Ok((payload, key.kid.clone()))
}

/// The verified payload of a token [`parse_typed`] found a key for, as JSON. Checks the
/// signature only.
pub(crate) fn verify_payload(parsed: Parsed<'_>) -> Result<serde_json::Value, Error> {
    let (payload, _) = signed_payload(parsed)?;
    serde_json::from_slice(&payload).map_err(|_| Error::InvalidToken)
}

/// Checks `exp` and `nbf` against the engine's clock with `leeway_secs` of tolerance.
pub(crate) fn check_time(claims: &Claims, now: Timestamp, leeway_secs: i64) -> Result<(), Error> {
    let now = now.unix_secs();
    if now >= claims.exp.saturating_add(leeway_secs) {
        return Err(Error::Expired);
    }
    if claims.nbf > now.saturating_add(leeway_secs) {
        return Err(Error::InvalidToken);
    }
    Ok(())
}

/// The header members we read or refuse. Unknown members are ignored.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    jku: Option<serde_json::Value>,
    jwk: Option<serde_json::Value>,
    x5u: Option<serde_json::Value>,
    x5c: Option<serde_json::Value>,
    crit: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(perms: &[&str]) -> Claims {
        let mut perms: Vec<Permission> =
            perms.iter().map(|p| Permission::new(*p).unwrap()).collect();
        perms.sort();
        Claims {
            iss: "i".into(),
            sub: UserId::generate(),
            aud: "a".into(),
            exp: 0,
            iat: 0,
            nbf: 0,
            jti: "j".into(),
            sid: crate::model::SessionId::generate(),
            org: None,
            roles: vec![],
            perms,
            perms_omitted: false,
            amr: vec![],
            acr: "aal1".into(),
            rev: None,
            client_id: None,
            scope: None,
        }
    }

    /// Tokens are signed with the key pair parsed once, not through jsonwebtoken; the
    /// format does not change: an EdDSA token is byte for byte what jsonwebtoken signs,
    /// and jsonwebtoken verifies an ES256 one.
    #[test]
    fn tokens_signed_here_are_the_tokens_jsonwebtoken_signs_and_verifies() {
        use jsonwebtoken::{EncodingKey, Header, Validation};
        let claims = claims(&["invoices:*", "payments:read"]);
        let now = Timestamp::from_unix_secs(0);
        let (key, pkcs8) =
            SigningKey::generate(crate::config::SigningAlgorithm::EdDSA, now).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(key.kid.clone());
        let theirs =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&pkcs8)).unwrap();
        assert_eq!(sign(&key, &claims).unwrap(), theirs);

        let (key, _) = SigningKey::generate(crate::config::SigningAlgorithm::ES256, now).unwrap();
        let ours = sign(&key, &claims).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let read = jsonwebtoken::decode::<Claims>(&ours, &key.decoding, &validation).unwrap();
        assert_eq!(read.claims, claims);
        assert_eq!(read.header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(read.header.typ.as_deref(), Some(ACCESS_TOKEN_TYP));
    }

    #[test]
    fn permissions_are_found_exactly_or_by_their_resources_wildcard() {
        let c = claims(&[
            "invoices:*",
            "invoices_archive:read",
            "payments:read",
            "a:b",
        ]);
        for granted in [
            "invoices:write",
            "invoices:*",
            "payments:read",
            "a:b",
            "invoices_archive:read",
        ] {
            assert!(c.has_permission(granted), "{granted}");
        }
        for refused in [
            "payments:write",
            "invoices_archive:write",
            "invoice:write",
            "a:c",
            "",
            "INVOICES:write",
            "invoices",
            "invoices:",
            "invoices:WRITE",
            "invoices:a:b",
            "a:b:c",
        ] {
            assert!(!c.has_permission(refused), "{refused}");
        }
        // Among many actions of one resource, beside resources it prefixes.
        let c = claims(&["x:a", "x:c", "x:d", "x-y:b", "x0:b", "x_y:b", "xy:b"]);
        for granted in ["x:a", "x:c", "x:d", "x-y:b", "x0:b", "x_y:b", "xy:b"] {
            assert!(c.has_permission(granted), "{granted}");
        }
        for refused in ["x:b", "x:e", "x:0", "x:*", "x-y:a", "xy:c"] {
            assert!(!c.has_permission(refused), "{refused}");
        }
        assert!(!claims(&[]).has_permission("a:b"));
    }
}
