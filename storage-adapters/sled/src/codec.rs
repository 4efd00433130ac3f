//! Record encoding: a format-version byte, then JSON. Anything else fails closed.

use portcullis::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The current record format.
const V1: u8 = 1;

pub(crate) fn enc<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![V1];
    serde_json::to_writer(&mut out, value).map_err(crate::backend)?;
    Ok(out)
}

pub(crate) fn dec<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&V1, rest)) => serde_json::from_slice(rest).map_err(|_| StoreError::Corrupt { what }),
        _ => Err(StoreError::Corrupt { what }),
    }
}

/// Concatenated key parts (fixed-width ids first, so prefixes scan cleanly).
pub(crate) fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

/// A text key part that can be followed by more: its length (8 bytes, big-endian), then its
/// bytes. Its encoding is a prefix of exactly the keys that start with this very text, so
/// a prefix scan finds no longer text that merely begins with it.
pub(crate) fn text(part: &str) -> Vec<u8> {
    cat(&(part.len() as u64).to_be_bytes(), part.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_versions_and_garbage_fail_closed() {
        let good = enc(&vec![1u32, 2]).unwrap();
        assert_eq!(dec::<Vec<u32>>(&good, "x").unwrap(), vec![1, 2]);
        let mut future = good.clone();
        future[0] = 2;
        assert!(matches!(
            dec::<Vec<u32>>(&future, "x"),
            Err(StoreError::Corrupt { what: "x" })
        ));
        assert!(dec::<Vec<u32>>(&[], "x").is_err());
        assert!(dec::<Vec<u32>>(&[1, b'{'], "x").is_err());
    }

    #[test]
    fn a_text_part_prefixes_only_keys_of_that_very_text() {
        let key = |a: &str, b: &str| cat(&text(a), b.as_bytes());
        assert!(key("ab", "c").starts_with(&text("ab")));
        assert!(!key("abc", "").starts_with(&text("ab")));
        assert!(!key("a", "bc").starts_with(&text("ab")));
        assert_ne!(key("a", "bc"), key("ab", "c"));
    }
}
