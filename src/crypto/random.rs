//! Random tokens and codes from the OS RNG.

use zeroize::Zeroizing;

use super::b64url;
use crate::Error;

/// `N` random bytes from the operating system.
///
/// Fails (instead of panicking) only if the OS has no entropy source to give.
pub fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, Error> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(bytes.as_mut()).map_err(|_| Error::Internal("the OS random source"))?;
    Ok(bytes)
}

/// A fresh token: 32 random bytes (256 bits), base64url without padding (43 characters).
pub fn random_token() -> Result<Zeroizing<String>, Error> {
    let bytes = random_bytes::<32>()?;
    Ok(Zeroizing::new(b64url(bytes.as_ref())))
}

/// A uniformly random code of `digits` decimal digits (leading zeros kept).
///
/// Uses rejection sampling, so no code is more likely than another (no modulo bias).
/// `digits` must be 4 to 9.
pub fn numeric_code(digits: u8) -> Result<Zeroizing<String>, Error> {
    if !(4..=9).contains(&digits) {
        return Err(Error::invalid("digits", "must be 4 to 9"));
    }
    let modulus = 10u32.pow(u32::from(digits));
    // The largest multiple of `modulus` that fits in u32: draws at or above it are biased.
    let zone = u32::MAX - (u32::MAX % modulus);
    loop {
        let draw = u32::from_le_bytes(*random_bytes::<4>()?);
        if draw < zone {
            let width = usize::from(digits);
            return Ok(Zeroizing::new(format!("{:0width$}", draw % modulus)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_are_256_bit_and_distinct() {
        let tokens: HashSet<String> = (0..200)
            .map(|_| random_token().unwrap().to_string())
            .collect();
        assert_eq!(tokens.len(), 200);
        assert!(tokens.iter().all(|t| t.len() == 43));
        assert!(tokens.iter().all(|t| {
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }));
    }

    #[test]
    fn codes_have_exact_width_and_all_digits_appear() {
        let mut seen = [0u32; 10];
        for _ in 0..2000 {
            let code = numeric_code(6).unwrap();
            assert_eq!(code.len(), 6);
            for b in code.bytes() {
                seen[usize::from(b - b'0')] += 1;
            }
        }
        // 12 000 digits: each digit expected 1 200 times; 900 is > 8 standard deviations off.
        assert!(seen.iter().all(|&n| n > 900), "digit counts {seen:?}");
    }

    #[test]
    fn code_width_is_checked() {
        assert!(numeric_code(3).is_err());
        assert!(numeric_code(10).is_err());
        assert_eq!(numeric_code(9).unwrap().len(), 9);
    }
}
