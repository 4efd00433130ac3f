//! Password hashing: Argon2id at the policy's parameters, off the executor and bounded to
//! one hash per core; verifying stored hashes (capped, so a stored hash cannot demand
//! unbounded work); and, with feature `legacy-hashes`, hashes imported from other systems.

use std::sync::{Arc, OnceLock};

use argon2::{Algorithm, Argon2, Params, PasswordHash as Phc, PasswordHasher, Version};
use zeroize::Zeroizing;

use crate::Error;
use crate::crypto::Password;
use crate::engine::Inner;
use crate::model::PasswordHash;

/// Argon2id memory cost, KiB.
pub const M_COST: u32 = 19_456;
/// Argon2id passes.
pub const T_COST: u32 = 2;
/// Argon2id lanes.
pub const P_COST: u32 = 1;

fn argon2() -> Result<Argon2<'static>, Error> {
    let params = Params::new(M_COST, T_COST, P_COST, None)
        .map_err(|_| Error::Internal("argon2 parameters"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Whether a stored hash is Argon2id with at least the policy's parameters.
pub(super) fn up_to_policy(phc: &str) -> bool {
    let Ok(parsed) = Phc::new(phc) else {
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    match Params::try_from(&parsed) {
        Ok(p) => p.m_cost() >= M_COST && p.t_cost() >= T_COST && p.p_cost() >= P_COST,
        Err(_) => false,
    }
}

/// Runs a hash on the blocking pool, behind the engine's bound on concurrent hashes.
async fn off_executor<T: Send + 'static>(
    inner: &Inner,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    let permit = inner
        .password_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Error::Internal("password hashing task"))?;
    match tokio::runtime::Handle::try_current() {
        // The permit travels with the work: a caller that gives up (a client gone, a
        // timeout) frees its slot only when the hash it started has finished.
        Ok(runtime) => runtime
            .spawn_blocking(move || {
                let _permit = permit;
                work()
            })
            .await
            .map_err(|_| Error::Internal("password hashing")),
        Err(_) => {
            let _permit = permit;
            Ok(work())
        }
    }
}

/// The password in Unicode normalization form KC (NIST SP 800-63B: a password typed
/// with a precomposed "é" on one keyboard and "e" + combining accent on another is the
/// same password). What is hashed, and what lengths are counted on.
pub(super) fn normalized(password: &Password) -> Zeroizing<String> {
    use unicode_normalization::UnicodeNormalization;
    Zeroizing::new(password.secret().nfkc().collect())
}

pub(super) async fn hash(inner: &Inner, password: &Password) -> Result<PasswordHash, Error> {
    let secret = Zeroizing::new(normalized(password).as_bytes().to_vec());
    let phc = off_executor(inner, move || -> Result<String, Error> {
        let hash = argon2()?
            .hash_password(&secret)
            .map_err(|_| Error::Internal("password hashing"))?;
        Ok(hash.to_string())
    })
    .await??;
    Ok(PasswordHash::new(phc))
}

/// How a password met its stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It did not.
    Mismatch,
    /// Its normalized form matched.
    Match,
    /// Only the password as typed matched: a hash made before normalization (or imported
    /// from a system that hashed it raw), to be replaced.
    MatchedRaw,
}

/// Verifies against a stored hash (or the dummy), at the same cost either way: the
/// normalized password first and, when normalization changed it, the password as typed.
pub(super) async fn verify(
    inner: &Inner,
    password: &Password,
    stored: Option<&PasswordHash>,
) -> Result<Verdict, Error> {
    let nfkc = Zeroizing::new(normalized(password).as_bytes().to_vec());
    let raw = Zeroizing::new(password.secret().as_bytes().to_vec());
    let real = stored.is_some();
    let phc = match stored {
        Some(hash) => hash.as_str().to_owned(),
        None => dummy_hash(inner).await?,
    };
    let verdict = off_executor(inner, move || {
        if verify_stored(&nfkc, &phc) {
            Verdict::Match
        } else if raw != nfkc && verify_stored(&raw, &phc) {
            Verdict::MatchedRaw
        } else {
            Verdict::Mismatch
        }
    })
    .await?;
    Ok(if real { verdict } else { Verdict::Mismatch })
}

/// Verifies a password against a stored hash of any format we read: Argon2 PHC strings,
/// and with feature `legacy-hashes` the imported ones.
fn verify_stored(password: &[u8], stored: &str) -> bool {
    if stored.starts_with("$argon2") {
        return Phc::new(stored)
            .ok()
            .is_some_and(|parsed| verify_phc(password, &parsed));
    }
    #[cfg(feature = "legacy-hashes")]
    {
        legacy::verify(password, stored)
    }
    #[cfg(not(feature = "legacy-hashes"))]
    {
        false
    }
}

/// The most a stored hash may ask for (an imported or tampered hash must not make one
/// sign-in allocate gigabytes or run for minutes): 256 MiB, 10 passes, 16 lanes.
const MAX_VERIFY_KIB: u32 = 256 * 1024;
const MAX_VERIFY_T: u32 = 10;
const MAX_VERIFY_P: u32 = 16;

thread_local! {
    /// Each hashing thread keeps its Argon2 working memory between hashes: allocating
    /// (and faulting in) 19 MiB afresh for every sign-in costs nearly half as much again
    /// as the hash itself.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Verifies an Argon2 PHC string, reusing this thread's working memory.
fn verify_phc(password: &[u8], phc: &Phc) -> bool {
    let algorithm = match phc.algorithm.as_str() {
        "argon2id" => Algorithm::Argon2id,
        "argon2i" => Algorithm::Argon2i,
        "argon2d" => Algorithm::Argon2d,
        _ => return false,
    };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(phc) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_KIB
        || params.t_cost() > MAX_VERIFY_T
        || params.p_cost() > MAX_VERIFY_P
    {
        return false;
    }
    let version = phc
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    // Only memory of the policy's size is kept per thread; a larger imported hash works
    // in memory of its own, released afterwards.
    let kept = Params::new(M_COST, T_COST, P_COST, None).map_or(0, |p| p.block_count());
    let hashed = if blocks <= kept {
        BLOCKS.with(|cell| {
            let Ok(mut memory) = cell.try_borrow_mut() else {
                return false;
            };
            if memory.len() < blocks {
                memory.resize(blocks, argon2::Block::new());
            }
            argon2
                .hash_password_into_with_memory(
                    password,
                    salt.as_ref(),
                    &mut out,
                    &mut memory[..blocks],
                )
                .is_ok()
        })
    } else {
        argon2
            .hash_password_into(password, salt.as_ref(), &mut out)
            .is_ok()
    };
    hashed && crate::crypto::ct_eq(&out, expected.as_bytes())
}

/// A hash of a random password at the policy's cost, made once per process.
async fn dummy_hash(inner: &Inner) -> Result<String, Error> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash.clone());
    }
    let random = crate::crypto::random_token()?;
    let made = hash(inner, &Password::new(random.as_str())).await?;
    Ok(DUMMY.get_or_init(|| made.as_str().to_owned()).clone())
}

/// Hashes imported from other systems (feature `legacy-hashes`). Each verifies once at
/// sign-in, and the password is then rehashed with Argon2id.
#[cfg(feature = "legacy-hashes")]
mod legacy {
    use base64::Engine;

    /// Per-hash work caps, so an imported hash cannot make a sign-in arbitrarily slow.
    const MAX_BCRYPT_COST: u32 = 14;
    const MAX_PBKDF2_ROUNDS: u32 = 1_200_000;

    pub(super) fn verify(password: &[u8], stored: &str) -> bool {
        if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            return bcrypt(password, stored);
        }
        if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
            return django_pbkdf2(password, rest);
        }
        better_auth_scrypt(password, stored)
    }

    /// `$2b$<cost>$<salt+hash>` (also `$2a$`, `$2y$`). Like every bcrypt, it reads only the
    /// first 72 bytes of a password; the Argon2id rehash then covers all of it.
    fn bcrypt(password: &[u8], stored: &str) -> bool {
        let cost = stored.get(4..6).and_then(|c| c.parse::<u32>().ok());
        if cost.is_none_or(|c| c > MAX_BCRYPT_COST) {
            return false;
        }
        bcrypt::verify(password, stored).unwrap_or(false)
    }

    /// Django: `pbkdf2_sha256$<iterations>$<salt>$<base64 of the 32-byte key>`.
    fn django_pbkdf2(password: &[u8], rest: &str) -> bool {
        let mut parts = rest.splitn(3, '$');
        let (Some(rounds), Some(salt), Some(hash)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(rounds) = rounds.parse::<u32>() else {
            return false;
        };
        let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(hash) else {
            return false;
        };
        if rounds == 0 || rounds > MAX_PBKDF2_ROUNDS || expected.is_empty() || expected.len() > 64 {
            return false;
        }
        let mut out = zeroize::Zeroizing::new(vec![0u8; expected.len()]);
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt.as_bytes(), rounds, &mut out);
        crate::crypto::ct_eq(&out, &expected)
    }

    /// better-auth: `<salt as 32 hex chars>:<128 hex chars of key>`, the key being
    /// scrypt(password, salt text, N = 16384, r = 16, p = 1, 64 bytes). better-auth
    /// NFKC-normalizes the password first, as this engine does before verifying.
    fn better_auth_scrypt(password: &[u8], stored: &str) -> bool {
        let Some((salt, key)) = stored.split_once(':') else {
            return false;
        };
        let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        if salt.len() != 32 || key.len() != 128 || !hex(salt) || !hex(key) {
            return false;
        }
        let Some(expected) = decode_hex(key) else {
            return false;
        };
        let Ok(params) = scrypt::Params::new(14, 16, 1) else {
            return false;
        };
        let mut out = zeroize::Zeroizing::new(vec![0u8; 64]);
        if scrypt::scrypt(password, salt.as_bytes(), &params, &mut out).is_err() {
            return false;
        }
        crate::crypto::ct_eq(&out, &expected)
    }

    fn decode_hex(text: &str) -> Option<Vec<u8>> {
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect()
    }
}

/// How many hashes may run at once: one per core.
pub(crate) fn slots() -> Arc<tokio::sync::Semaphore> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(tokio::sync::Semaphore::new(cores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hashes_asking_for_too_much_work_never_match() {
        use argon2::PasswordHasher;
        let make = |m: u32, t: u32, p: u32| {
            let params = Params::new(m, t, p, None).unwrap();
            let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"pw")
                .unwrap()
                .to_string();
            Phc::new(&hash).unwrap().to_string()
        };
        let verifies = |phc: &str| verify_phc(b"pw", &Phc::new(phc).unwrap());
        assert!(verifies(&make(64, 10, 1)), "at the caps");
        assert!(verifies(&make(128, 2, 16)));
        assert!(!verifies(&make(64, 11, 1)), "too many passes");
        assert!(!verifies(&make(256, 1, 17)), "too many lanes");
        // Above the kept size (a 32 MiB imported hash) it still verifies, in memory of its own.
        assert!(verifies(&make(32 * 1024, 1, 1)));
        assert!(!verify_phc(b"other", &Phc::new(&make(64, 1, 1)).unwrap()));
    }

    #[test]
    fn policy_parameters_are_recognised() {
        assert!(up_to_policy(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
        ));
        assert!(up_to_policy(
            "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
        ));
        assert!(!up_to_policy(
            "$argon2id$v=19$m=4096,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
        ));
        assert!(!up_to_policy(
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
        ));
        assert!(!up_to_policy(
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
        ));
        assert!(!up_to_policy("garbage"));
    }
}
