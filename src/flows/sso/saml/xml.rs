//! The one way SAML documents are read here: roxmltree, which refuses a DTD (so no
//! entities, external or not), under a node budget; plus the few XML values SAML needs
//! (`xs:dateTime`).

use roxmltree::{Document, Node, ParsingOptions};

use crate::{Error, Timestamp};

pub(crate) const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub(crate) const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";

/// Far more elements than any real response or metadata document has.
const NODES_LIMIT: u32 = 20_000;

pub(crate) fn failed(reason: &'static str) -> Error {
    Error::SsoFailed { reason }
}

/// Parses `text` with DTDs refused (checklist SAML-01) and a node budget.
pub(crate) fn parse(text: &str) -> Result<Document<'_>, Error> {
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: NODES_LIMIT,
    };
    Document::parse_with_options(text, options).map_err(|err| match err {
        roxmltree::Error::DtdDetected => failed("the SAML message has a DTD"),
        _ => failed("the SAML message is not well-formed XML"),
    })
}

/// Whether `node` is the element `name` of namespace `ns`.
pub(crate) fn is(node: Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(ns)
}

/// The element children of `node` named `name` in `ns`.
pub(crate) fn children<'a, 'input>(
    node: Node<'a, 'input>,
    ns: &'static str,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children().filter(move |c| is(*c, ns, name))
}

/// The only child `name` of `node`: none or several is `reason`.
pub(crate) fn only_child<'a, 'input>(
    node: Node<'a, 'input>,
    ns: &'static str,
    name: &'static str,
    reason: &'static str,
) -> Result<Node<'a, 'input>, Error> {
    let mut found = children(node, ns, name);
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        _ => Err(failed(reason)),
    }
}

/// The whole text of a simple element: every text node, joined, so that a comment inside
/// it cannot cut the value short (checklist SAML-07). An element inside is refused.
pub(crate) fn text(node: Node<'_, '_>) -> Result<String, Error> {
    let mut out = String::new();
    for child in node.children() {
        if child.is_element() {
            return Err(failed("a SAML value holds markup"));
        }
        if let Some(t) = child.text().filter(|_| child.is_text()) {
            out.push_str(t);
        }
    }
    Ok(out.trim().to_owned())
}

/// An `xs:dateTime` in UTC (`2026-12-04T21:00:00Z`, fractions of a second allowed).
/// Anything else, including another offset, is refused (checklist SAML-13).
pub(crate) fn parse_instant(value: &str) -> Result<Timestamp, Error> {
    let bad = || failed("a SAML timestamp is malformed");
    let value = value.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = value.split_once('T').ok_or_else(bad)?;
    let (seconds, fraction) = match time.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (time, None),
    };
    let numbers = |text: &str, sep: char, widths: [usize; 3]| -> Result<[i64; 3], Error> {
        let parts: Vec<&str> = text.split(sep).collect();
        if parts.len() != 3 {
            return Err(bad());
        }
        let mut out = [0i64; 3];
        for (i, part) in parts.iter().enumerate() {
            if part.len() != widths[i] || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            out[i] = part.parse().map_err(|_| bad())?;
        }
        Ok(out)
    };
    let [year, month, day] = numbers(date, '-', [4, 2, 2])?;
    let [hour, minute, second] = numbers(seconds, ':', [2, 2, 2])?;
    let millis = match fraction {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{f:0<3}")[..3].parse::<i64>().map_err(|_| bad())?
        }
        Some(_) => return Err(bad()),
        None => 0,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Ok(Timestamp::from_unix_millis(secs * 1000 + millis))
}

// Howard Hinnant's days_from_civil (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_and_malformed_ones_are_refused() {
        let at = parse_instant("2026-12-04T21:09:42Z").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-04T21:09:42Z");
        assert_eq!(
            parse_instant("2026-12-04T21:09:42.5Z")
                .unwrap()
                .unix_millis(),
            at.unix_millis() + 500
        );
        assert_eq!(
            parse_instant("1970-01-01T00:00:00Z").unwrap().unix_millis(),
            0
        );
        assert_eq!(
            Timestamp::from_unix_secs(951_782_400).to_rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        // SAML-13: malformed timestamps are refused.
        for bad in [
            "2024-13-45T99:00:00Z",
            "2026-12-04T21:09:42",
            "2026-12-04T21:09:42+01:00",
            "2023-02-29T00:00:00Z",
            "2026-12-04 21:09:42Z",
            "2026-12-04T21:09:42.Z",
            "+2026-12-04T21:09:42Z",
        ] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_dtd_is_refused_before_anything_is_read() {
        let doc = "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>";
        assert!(matches!(
            parse(doc),
            Err(Error::SsoFailed { reason }) if reason.contains("DTD")
        ));
    }

    #[test]
    fn text_joins_around_comments_and_refuses_markup() {
        let doc = parse("<a>victim@corp.com<!---->.evil.com</a>").unwrap();
        assert_eq!(
            text(doc.root_element()).unwrap(),
            "victim@corp.com.evil.com"
        );
        let doc = parse("<a>x<b/>y</a>").unwrap();
        assert!(text(doc.root_element()).is_err());
    }
}
