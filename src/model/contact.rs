//! [`Email`] and [`Phone`]: contact identifiers that are normalized once, at construction,
//! so that every comparison, index and rate-limit key sees the same form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A normalized email address.
///
/// Construction trims surrounding whitespace and **lowercases the whole address**, the
/// local part included. RFC 5321 lets a server treat the local part case-sensitively, but no
/// mainstream provider does, and treating `Alice@x.com` and `alice@x.com` as two accounts
/// invites duplicate accounts and look-alike sign-ups. Nothing else is rewritten: dots and
/// `+tags` are kept, since only some providers ignore them.
///
/// Accepted: a dot-atom local part of at most 64 bytes (ASCII `atext` or UTF-8, RFC 6531)
/// and an ASCII domain name (IDNs in their `xn--` form) with at least two labels; at most
/// 254 bytes in all. Rejected: quoted local parts, IP-literal domains, whitespace and
/// control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Checks and normalizes an email address.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::invalid("email", reason);
        let (local, domain) = input
            .trim()
            .rsplit_once('@')
            .ok_or_else(|| bad("has no @"))?;
        // Lowercasing can lengthen a string ('İ' is 2 bytes, its lowercase 3), so the limits
        // are checked on the normalized form: what is stored is what was checked.
        let (local, domain) = (local.to_lowercase(), domain.to_ascii_lowercase());
        check_local_part(&local).map_err(bad)?;
        check_domain(&domain).map_err(bad)?;
        let email = format!("{local}@{domain}");
        if email.len() > 254 {
            return Err(bad("is longer than 254 bytes"));
        }
        Ok(Email(email))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(l, _)| l)
    }
}

fn check_local_part(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("has nothing before the @");
    }
    if local.len() > 64 {
        return Err("has more than 64 bytes before the @");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("has a misplaced dot before the @");
    }
    let atext =
        |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) || !c.is_ascii();
    if local
        .chars()
        .any(|c| !atext(c) || c.is_whitespace() || c.is_control())
    {
        return Err("has a character that is not allowed before the @");
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.is_empty() {
        return Err("has no domain");
    }
    if !domain.is_ascii() {
        return Err("domain must be ASCII (use the xn-- form of international names)");
    }
    if domain.len() > 253 {
        return Err("domain is longer than 253 bytes");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("domain needs at least one dot");
    }
    for label in &labels {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err("domain has an invalid label");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("domain label starts or ends with a hyphen");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("domain must be a name, not an IP address");
    }
    Ok(())
}

impl FromStr for Email {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Email::parse(s)
    }
}

impl TryFrom<String> for Email {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> String {
        email.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in E.164 form: `+` and 7 to 15 digits, the first not zero.
///
/// Input may contain spaces, hyphens, dots and parentheses between digits (`+1 (555)
/// 010-9999`); they are removed. A national number without the `+` and country code is
/// rejected rather than guessed.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    /// Checks and normalizes a phone number to E.164.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::invalid("phone", reason);
        let rest = input
            .trim()
            .strip_prefix('+')
            .ok_or_else(|| bad("must start with + and the country code (E.164)"))?;
        let mut digits = String::with_capacity(16);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(bad("may contain only digits after the +")),
            }
            if digits.len() > 15 {
                return Err(bad("has more than 15 digits"));
            }
        }
        if digits.len() < 7 {
            return Err(bad("has fewer than 7 digits"));
        }
        if digits.starts_with('0') {
            return Err(bad("country code cannot start with 0"));
        }
        Ok(Phone(format!("+{digits}")))
    }

    /// The number in E.164 form, `+` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Phone {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Phone::parse(s)
    }
}

impl TryFrom<String> for Phone {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Phone::parse(&value)
    }
}

impl From<Phone> for String {
    fn from(phone: Phone) -> String {
        phone.0
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.0)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased_whole() {
        let email = Email::parse("  Alice.Smith+Work@Example.COM\n").unwrap();
        assert_eq!(email.as_str(), "alice.smith+work@example.com");
        assert_eq!(email.domain(), "example.com");
        assert_eq!(email.local_part(), "alice.smith+work");
        assert_eq!(email, Email::parse("alice.smith+work@example.com").unwrap());
    }

    #[test]
    fn unicode_local_parts_are_lowercased() {
        let email = Email::parse("ÉLODIE@exemple.fr").unwrap();
        assert_eq!(email.as_str(), "élodie@exemple.fr");
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@127.0.0.1",
            "alice@[127.0.0.1]",
            "al ice@example.com",
            "\"alice\"@example.com",
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
            "alice@-example.com",
            "alice@exa_mple.com",
            "alice@example..com",
            "alice@bücher.de",
            "ali\u{0}ce@example.com",
            "alice@example.com\u{7f}",
        ] {
            let err = Email::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{bad:?} must be rejected");
        }
    }

    #[test]
    fn email_length_limits() {
        let local = "a".repeat(64);
        assert!(Email::parse(&format!("{local}@example.com")).is_ok());
        assert!(Email::parse(&format!("a{local}@example.com")).is_err());
        // "b@" + 63.63.63.56 + ".com" = 254 bytes: the longest address allowed.
        let labels = [
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(56),
        ];
        let longest = format!("b@{}.com", labels.join("."));
        assert_eq!(longest.len(), 254);
        assert!(Email::parse(&longest).is_ok());
        assert!(Email::parse(&format!("bb{}", &longest[1..])).is_err());
        assert!(
            Email::parse(&format!("b@{}.com", "a".repeat(64))).is_err(),
            "label > 63"
        );
    }

    #[test]
    fn limits_apply_to_the_normalized_form() {
        // 'İ' (2 bytes) lowercases to "i̇" (3 bytes): 32 of them fit as typed, not as stored.
        let typed = format!("{}@example.com", "İ".repeat(32));
        assert!(Email::parse(&typed).is_err());
        let fits = Email::parse(&format!("{}@example.com", "İ".repeat(21))).unwrap();
        assert!(fits.local_part().len() <= 64);
        let again: Email = serde_json::from_value(serde_json::json!(fits.as_str())).unwrap();
        assert_eq!(again, fits, "a stored address always reads back");
    }

    #[test]
    fn email_deserialization_normalizes_and_validates() {
        let email: Email = serde_json::from_str("\"Bob@Example.org\"").unwrap();
        assert_eq!(email.as_str(), "bob@example.org");
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
    }

    #[test]
    fn phone_is_normalized_to_e164() {
        let phone = Phone::parse(" +1 (555) 010-9999 ").unwrap();
        assert_eq!(phone.as_str(), "+15550109999");
        assert_eq!(
            Phone::parse("+44.20.7946.0958").unwrap().as_str(),
            "+442079460958"
        );
    }

    #[test]
    fn malformed_phones_are_rejected() {
        for bad in [
            "",
            "5550109999",
            "+",
            "+123456",
            "+0123456789",
            "+1234567890123456",
            "+1 555 CALL NOW",
            "++15550109999",
            "+1555\u{0}0109999",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(Phone::parse("+1234567").is_ok());
        assert!(Phone::parse("+123456789012345").is_ok());
    }
}
