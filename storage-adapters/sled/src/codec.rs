//! Record encoding. Every value starts with a format-version byte:
//!
//! - `1`: JSON (`serde_json` of the model). Still written for the small or rare kinds
//!   (challenges, credentials, roles, events…), and still read for users, sessions and
//!   organizations written before version 2.
//! - `2`: the compact binary layout of a [`Record`] (users, sessions, organizations: the
//!   kinds there are millions of). Their layouts are in `records.rs`.
//!
//! Users, sessions and organizations are written as version 2 and read as either, so a
//! data directory from before version 2 opens as it is: each old record is rewritten when
//! it next changes, and no migration runs at open. Anything else — an unknown version, a
//! truncated record, trailing bytes, invalid UTF-8, an address that no longer parses —
//! fails closed with [`StoreError::Corrupt`].

use portcullis::{StoreError, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// JSON.
const V1: u8 = 1;
/// The compact layout of a [`Record`].
const V2: u8 = 2;

/// Encodes a value as JSON (version 1).
pub(crate) fn enc<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![V1];
    serde_json::to_writer(&mut out, value).map_err(crate::backend)?;
    Ok(out)
}

/// Decodes a value written by [`enc`].
pub(crate) fn dec<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&V1, rest)) => serde_json::from_slice(rest).map_err(|_| StoreError::Corrupt { what }),
        _ => Err(StoreError::Corrupt { what }),
    }
}

/// A record kind stored in the compact layout (version 2).
pub(crate) trait Record: DeserializeOwned {
    /// What a record of this kind that does not decode is reported as.
    const WHAT: &'static str;

    /// Writes every field, in the order [`read`](Self::read) reads them.
    fn write(&self, out: &mut Writer);

    /// Reads every field; `None` when the bytes are not a valid record.
    fn read(input: &mut Reader<'_>) -> Option<Self>;
}

/// Encodes a record in the compact layout (version 2).
pub(crate) fn enc_record<T: Record>(record: &T) -> Vec<u8> {
    let mut out = Writer(vec![V2]);
    record.write(&mut out);
    out.0
}

/// Decodes a record written by [`enc_record`], or by [`enc`] before version 2 existed.
pub(crate) fn dec_record<T: Record>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&V1, _)) => dec(bytes, T::WHAT),
        Some((&V2, rest)) => {
            let mut input = Reader(rest);
            T::read(&mut input)
                .filter(|_| input.is_empty())
                .ok_or(StoreError::Corrupt { what: T::WHAT })
        }
        _ => Err(StoreError::Corrupt { what: T::WHAT }),
    }
}

/// Builds a compact record: fixed-width bytes (ids, hashes) as they are, integers as
/// LEB128 varints, text after its length.
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn byte(&mut self, byte: u8) {
        self.0.push(byte);
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn uint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    /// Zigzag, so small negative numbers stay short too.
    pub(crate) fn int(&mut self, n: i64) {
        self.uint(((n << 1) ^ (n >> 63)) as u64);
    }

    pub(crate) fn time(&mut self, time: Timestamp) {
        self.int(time.unix_millis());
    }

    /// A time as its distance from an earlier one: a byte or three where the time itself
    /// takes six.
    pub(crate) fn time_since(&mut self, base: Timestamp, time: Timestamp) {
        self.int(time.unix_millis().wrapping_sub(base.unix_millis()));
    }

    pub(crate) fn str(&mut self, text: &str) {
        self.uint(text.len() as u64);
        self.bytes(text.as_bytes());
    }

    pub(crate) fn strs(&mut self, texts: &[String]) {
        self.uint(texts.len() as u64);
        for text in texts {
            self.str(text);
        }
    }

    /// JSON as text; `null` as the empty text (most records carry none).
    pub(crate) fn json(&mut self, value: &serde_json::Value) {
        match value {
            serde_json::Value::Null => self.str(""),
            value => self.str(&value.to_string()),
        }
    }
}

/// Reads a compact record. Every read returns `None` past the end of the input or on a
/// value out of range, so a truncated record never decodes.
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let (&byte, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(byte)
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let (bytes, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(bytes)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    pub(crate) fn uint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte may carry only the top bit of a u64.
            if bits << shift >> shift != bits {
                return None;
            }
            n |= bits << shift;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    pub(crate) fn int(&mut self) -> Option<i64> {
        let n = self.uint()?;
        Some((n >> 1) as i64 ^ -((n & 1) as i64))
    }

    pub(crate) fn time(&mut self) -> Option<Timestamp> {
        self.int().map(Timestamp::from_unix_millis)
    }

    pub(crate) fn time_since(&mut self, base: Timestamp) -> Option<Timestamp> {
        let millis = base.unix_millis().wrapping_add(self.int()?);
        Some(Timestamp::from_unix_millis(millis))
    }

    pub(crate) fn str(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.uint()?).ok()?;
        std::str::from_utf8(self.bytes(len)?).ok()
    }

    pub(crate) fn strs(&mut self) -> Option<Vec<String>> {
        // No capacity from the count: a corrupt count must not allocate, it runs out of
        // input instead.
        let count = self.uint()?;
        (0..count).map(|_| self.str().map(str::to_owned)).collect()
    }

    pub(crate) fn json(&mut self) -> Option<serde_json::Value> {
        match self.str()? {
            "" => Some(serde_json::Value::Null),
            text => serde_json::from_str(text).ok(),
        }
    }

    /// A UUID (the ids' `from_uuid`) from its 16 bytes.
    pub(crate) fn uuid(&mut self) -> Option<Uuid> {
        self.array().map(Uuid::from_bytes)
    }

    /// Whether every byte was read: nothing may follow a record's last field.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
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
    use portcullis::UserId;

    use super::*;

    #[test]
    fn unknown_versions_and_garbage_fail_closed() {
        let good = enc(&vec![1u32, 2]).unwrap();
        assert_eq!(dec::<Vec<u32>>(&good, "x").unwrap(), vec![1, 2]);
        let mut future = good.clone();
        future[0] = 9;
        assert!(matches!(
            dec::<Vec<u32>>(&future, "x"),
            Err(StoreError::Corrupt { what: "x" })
        ));
        assert!(dec::<Vec<u32>>(&[], "x").is_err());
        assert!(dec::<Vec<u32>>(&[1, b'{'], "x").is_err());
    }

    #[test]
    fn integers_round_trip_at_every_width() {
        let uints = [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX];
        let ints = [0, -1, 1, -64, 64, 1_733_000_000_000, i64::MIN, i64::MAX];
        let mut out = Writer(Vec::new());
        uints.iter().for_each(|&n| out.uint(n));
        ints.iter().for_each(|&n| out.int(n));
        let mut input = Reader(&out.0);
        for n in uints {
            assert_eq!(input.uint(), Some(n));
        }
        for n in ints {
            assert_eq!(input.int(), Some(n));
        }
        assert!(input.is_empty());
    }

    #[test]
    fn small_integers_take_one_byte_and_a_timestamp_six() {
        let len = |write: &dyn Fn(&mut Writer)| {
            let mut out = Writer(Vec::new());
            write(&mut out);
            out.0.len()
        };
        assert_eq!(len(&|w| w.uint(127)), 1);
        assert_eq!(len(&|w| w.int(-64)), 1);
        assert_eq!(len(&|w| w.int(1_733_000_000_000)), 6);
        assert_eq!(len(&|w| w.uint(u64::MAX)), 10);
    }

    #[test]
    fn an_integer_past_64_bits_or_the_input_fails() {
        let too_wide = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(Reader(&too_wide).uint(), None);
        let too_long = [0x80; 11];
        assert_eq!(Reader(&too_long).uint(), None);
        assert_eq!(Reader(&[0x80]).uint(), None);
        assert_eq!(Reader(&[]).uint(), None);
    }

    #[test]
    fn text_must_be_utf8_and_fit_the_input() {
        assert_eq!(Reader(&[2, b'h', b'i']).str(), Some("hi"));
        assert_eq!(Reader(&[3, b'h', b'i']).str(), None);
        assert_eq!(Reader(&[2, 0xc3, 0x28]).str(), None);
        let huge_count = [0xff, 0xff, 0xff, 0xff, 0x0f, 0];
        assert_eq!(Reader(&huge_count).strs(), None);
    }

    #[test]
    fn json_null_is_the_empty_text() {
        let mut out = Writer(Vec::new());
        out.json(&serde_json::Value::Null);
        out.json(&serde_json::json!({"plan": "pro"}));
        assert_eq!(out.0.first(), Some(&0));
        let mut input = Reader(&out.0);
        assert_eq!(input.json(), Some(serde_json::Value::Null));
        assert_eq!(input.json(), Some(serde_json::json!({"plan": "pro"})));
        assert_eq!(Reader(&[2, b'{', b'x']).json(), None);
    }

    #[test]
    fn an_id_reads_back_from_its_16_bytes() {
        let id = UserId::generate();
        let mut input = Reader(id.as_bytes());
        assert_eq!(input.uuid().map(UserId::from_uuid), Some(id));
        assert_eq!(Reader(&id.as_bytes()[..15]).uuid(), None);
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
