//! ID-token validation (OIDC Core §3.1.3.7; checklist RP-02…RP-05, RP-12) on
//! jsonwebtoken: signature against the connection's own JWKS with the algorithms it
//! allows (never `none` or HMAC), `iss` byte for byte, `aud`/`azp`, `exp`/`iat` against
//! the engine's clock, `nonce`, `at_hash`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::Digest as _;

use crate::engine::Inner;
use crate::model::{ConnectionId, SsoConnection};
use crate::{Error, Timestamp};

/// How far clocks may disagree.
const LEEWAY: Duration = Duration::from_secs(60);
/// The oldest `iat` accepted.
const MAX_AGE: Duration = Duration::from_secs(600);
/// An unknown `kid` refetches a connection's JWKS at most this often.
pub(crate) const JWKS_REFETCH: Duration = Duration::from_secs(60);

fn failed(reason: &'static str) -> Error {
    Error::SsoFailed { reason }
}

/// Each connection's signing keys as last fetched (parsed once), and when a fetch was
/// last started.
#[derive(Default)]
pub(crate) struct JwksCache {
    sets: Mutex<HashMap<ConnectionId, Cached>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwksCache")
    }
}

#[derive(Clone)]
struct Cached {
    /// The jwks_uri they came from: a changed endpoint never uses old keys.
    uri: String,
    keys: Vec<Key>,
    /// When the last fetch started: refetches are spaced by [`JWKS_REFETCH`], however
    /// many sign-ins ask at once.
    fetched_at: Timestamp,
}

/// A signing key of the JWKS, ready to verify with.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    /// The JWK's `alg`, when it names one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

impl Key {
    fn fits(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        use jsonwebtoken::AlgorithmFamily;
        kid.is_none_or(|kid| self.kid.as_deref() == Some(kid))
            && self.alg.is_none_or(|a| a == alg)
            && self.key.family() == alg.family()
            && matches!(
                alg.family(),
                AlgorithmFamily::Rsa | AlgorithmFamily::Ec | AlgorithmFamily::Ed
            )
    }
}

impl JwksCache {
    fn get(&self, id: ConnectionId, uri: &str) -> Option<Cached> {
        let sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        sets.get(&id).filter(|c| c.uri == uri).cloned()
    }

    fn put(&self, id: ConnectionId, cached: Cached) {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        sets.insert(id, cached);
    }

    /// Takes the right to refetch `id`'s keys now: at most once per [`JWKS_REFETCH`], and
    /// one caller of many racing.
    fn claim_refetch(&self, id: ConnectionId, now: Timestamp) -> bool {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        match sets.get_mut(&id) {
            Some(cached) if now.duration_since(cached.fetched_at) >= JWKS_REFETCH => {
                cached.fetched_at = now;
                true
            }
            Some(_) => false,
            None => true,
        }
    }
}

/// The algorithms a connection may name. HMAC and `none` are never among them.
pub(crate) const ALGORITHMS: [&str; 8] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "EdDSA",
];

fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

async fn fetch_keys(inner: &Inner, connection: &SsoConnection) -> Result<Cached, Error> {
    let uri = &connection.endpoints.jwks_uri;
    let fetched = inner.outbound.get(uri).await?;
    if fetched.status != 200 {
        return Err(failed("the provider's JWKS could not be fetched"));
    }
    let set: Value = fetched.json("the provider's JWKS is not JSON")?;
    // One key the engine cannot read (another key type, say) does not void the rest.
    let keys = set
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(failed("the provider's JWKS has no keys"))?
        .iter()
        .filter_map(|key| serde_json::from_value::<Jwk>(key.clone()).ok())
        .filter(|jwk| {
            !matches!(
                jwk.common.public_key_use,
                Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
            )
        })
        .filter_map(|jwk| {
            Some(Key {
                kid: jwk.common.key_id.clone(),
                alg: match jwk.common.key_algorithm {
                    Some(named) => Some(algorithm(&named.to_string())?),
                    None => None,
                },
                key: DecodingKey::from_jwk(&jwk).ok()?,
            })
        })
        .collect();
    let cached = Cached {
        uri: uri.clone(),
        keys,
        fetched_at: inner.clock.now(),
    };
    inner.jwks.put(connection.id, cached.clone());
    Ok(cached)
}

/// The key that signed a token with this header, from the connection's JWKS: by `kid`;
/// without one, the only key that fits the algorithm (several: refused). An unknown `kid`
/// refetches the JWKS at most once per [`JWKS_REFETCH`] for the connection.
async fn key_for(
    inner: &Inner,
    connection: &SsoConnection,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<DecodingKey, Error> {
    let uri = &connection.endpoints.jwks_uri;
    let mut cached = match inner.jwks.get(connection.id, uri) {
        Some(cached) => cached,
        None => fetch_keys(inner, connection).await?,
    };
    let mut refetched = false;
    loop {
        let mut found = cached.keys.iter().filter(|key| key.fits(kid, alg));
        match (found.next(), found.next()) {
            (Some(one), None) => return Ok(one.key.clone()),
            (None, _)
                if !refetched && inner.jwks.claim_refetch(connection.id, inner.clock.now()) =>
            {
                refetched = true;
                cached = fetch_keys(inner, connection).await?;
            }
            (None, _) => return Err(failed("the ID token's signing key is unknown")),
            (Some(_), Some(_)) => return Err(failed("the ID token names no key and several fit")),
        }
    }
}

/// What a valid ID token says.
#[derive(Debug, Clone)]
pub(crate) struct IdClaims {
    pub(crate) subject: String,
    pub(crate) claims: Map<String, Value>,
}

/// Validates `token` for `connection` and the transaction's `nonce`.
pub(crate) async fn validate(
    inner: &Inner,
    connection: &SsoConnection,
    token: &str,
    nonce: &crate::crypto::SecretHash,
    access_token: Option<&str>,
) -> Result<IdClaims, Error> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| failed("malformed ID token"))?;
    let alg = header.alg;
    let allowed = connection
        .algorithms
        .iter()
        .filter_map(|name| algorithm(name))
        .any(|a| a == alg);
    if !allowed {
        return Err(failed("the ID token's algorithm is not allowed"));
    }
    // `jku`, `x5u`, `jwk` and `x5c` headers are never read: keys come from the JWKS only.
    let key = key_for(inner, connection, header.kid.as_deref(), alg).await?;
    let mut validation = Validation::new(alg);
    // Time is checked below against the engine's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    // Present, or refused by jsonwebtoken; `exp` is then checked against our clock.
    validation.set_required_spec_claims(&["iss", "aud", "sub", "exp"]);
    validation.set_audience(&[connection.client_id.as_str()]);
    validation.set_issuer(&[connection.issuer.as_str()]);
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|err| {
            tracing::debug!(connection = %connection.id, error = %err, "ID token refused");
            failed("the ID token's signature, issuer or audience is wrong")
        })?;
    let claims = data.claims;
    check_issuer(connection, &claims)?;
    check_audience(connection, &claims)?;
    check_time(inner.clock.now(), &claims)?;
    let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if sent.is_empty() || !super::nonce_hash(inner, sent).ct_eq(nonce) {
        return Err(failed("the ID token's nonce is wrong"));
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control))
        .ok_or(failed("the ID token has no subject"))?
        .to_owned();
    if let (Some(at_hash), Some(access)) = (claims.get("at_hash"), access_token) {
        let expected = half_hash(alg, access.as_bytes());
        if at_hash.as_str() != Some(expected.as_str()) {
            return Err(failed("the ID token's at_hash is wrong"));
        }
    }
    Ok(IdClaims { subject, claims })
}

fn check_issuer(connection: &SsoConnection, claims: &Map<String, Value>) -> Result<(), Error> {
    // jsonwebtoken compared it already, but also takes an array of issuers: one string,
    // byte for byte, is the rule.
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == connection.issuer => Ok(()),
        _ => Err(failed("the ID token's issuer is wrong")),
    }
}

/// `aud` must hold our client id and nothing else; `azp`, when present, must be us.
fn check_audience(connection: &SsoConnection, claims: &Map<String, Value>) -> Result<(), Error> {
    let ours = connection.client_id.as_str();
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if audiences.is_empty() || audiences.iter().any(|aud| *aud != ours) {
        return Err(failed("the ID token's audience is wrong"));
    }
    match claims.get("azp") {
        None => Ok(()),
        Some(azp) if azp.as_str() == Some(ours) => Ok(()),
        Some(_) => Err(failed("the ID token's authorized party is wrong")),
    }
}

fn check_time(now: Timestamp, claims: &Map<String, Value>) -> Result<(), Error> {
    let seconds = |name: &str| claims.get(name).and_then(Value::as_i64);
    let now_secs = now.unix_secs();
    let leeway = LEEWAY.as_secs() as i64;
    let exp = seconds("exp").ok_or(failed("the ID token has no expiry"))?;
    if exp + leeway <= now_secs {
        return Err(failed("the ID token has expired"));
    }
    let iat = seconds("iat").ok_or(failed("the ID token has no issue time"))?;
    if iat > now_secs + leeway || iat + (MAX_AGE.as_secs() as i64) + leeway < now_secs {
        return Err(failed("the ID token was not issued just now"));
    }
    Ok(())
}

/// OIDC Core §3.1.3.6: the left half of the hash that goes with the signing algorithm,
/// base64url.
fn half_hash(alg: Algorithm, data: &[u8]) -> String {
    let digest: Vec<u8> = match alg {
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => {
            sha2::Sha384::digest(data).to_vec()
        }
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => {
            sha2::Sha512::digest(data).to_vec()
        }
        _ => sha2::Sha256::digest(data).to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}
