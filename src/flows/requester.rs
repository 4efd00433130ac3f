//! [`Requester`]: who asked for a link or code, told back to the person asked to confirm
//! it; and [`Locate`], the application's optional answer to "where is that address?".
//!
//! A same-device code (see [`magic_link`](super::magic_link)) stops a victim who merely
//! clicks, but a phishing page can still ask its victim to type the code it shows. What
//! lets the victim notice is the confirm page saying "requested from Chrome on Windows,
//! near Lyon, at 14:02" when they are on their phone in Oslo. So the engine keeps who
//! asked and turns it into short labels a page can show without echoing anything the
//! asker chose: the browser label comes from a fixed vocabulary, and a place is cut short
//! and stripped of control characters.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// Who asked, for the confirm page ("requested from Firefox on Linux at 203.0.113.9").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// The asking client's address.
    pub ip: Option<IpAddr>,
    /// The asking client's user agent, as it sent it (chosen by the asker: never show it
    /// raw; [`browser`](Self::browser) is the label to show).
    pub user_agent: Option<String>,
    /// When it asked.
    pub at: Timestamp,
}

impl Requester {
    /// A short label for the asking browser, such as `"Chrome on Windows"`,
    /// `"Firefox on Linux"` or `"Safari on iPhone"`; `None` when the user agent names
    /// neither a browser nor a system this knows.
    ///
    /// The words come from a fixed list, never from the user agent itself, so the label
    /// is safe to show and at most a few dozen characters long.
    pub fn browser(&self) -> Option<String> {
        self.user_agent.as_deref().and_then(browser_label)
    }
}

/// Names the approximate place an address is at ("Lyon, France"), for the page that asks
/// a person to confirm a sign-in someone requested. Given to the builder
/// ([`PortcullisBuilder::locate`](crate::PortcullisBuilder::locate)); without one there is no
/// place, only the address.
///
/// The engine ships no database: an application that has one (a GeoIP file it licenses
/// and keeps current) answers from it. It is called while a request waits, so it MUST
/// answer from memory, without I/O. The answer is shown to people as it is, cut to
/// [`LinkPeek::MAX_PLACE`](crate::LinkPeek::MAX_PLACE) characters with control characters
/// removed; `None` when the address is unknown (private, new, unlisted).
pub trait Locate: Send + Sync + fmt::Debug {
    /// The approximate place of `ip`, for people to read.
    fn place(&self, ip: IpAddr) -> Option<String>;

    /// The approximate coordinates of `ip`, for the impossible-travel signal
    /// ([`protect::signals`](crate::protect)); `None` (the default) turns it off.
    fn coordinates(&self, ip: IpAddr) -> Option<crate::protect::Coordinates> {
        let _ = ip;
        None
    }
}

/// Asks `locate` where `ip` is and makes the answer fit for a page: control characters
/// and runs of whitespace become one space, and at most `max` characters are kept.
pub(crate) fn place_of(
    locate: Option<&dyn Locate>,
    ip: Option<IpAddr>,
    max: usize,
) -> Option<String> {
    let answer = locate?.place(ip?)?;
    let words = answer
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty());
    let mut place = String::new();
    for word in words {
        if !place.is_empty() {
            place.push(' ');
        }
        place.push_str(word);
        if place.chars().count() >= max {
            break;
        }
    }
    let place: String = place.chars().take(max).collect();
    let place = place.trim_end().to_owned();
    (!place.is_empty()).then_some(place)
}

/// How much of a user agent is read: the tokens that name a browser come early, and
/// nothing past this is looked at, whatever the caller stored.
const READ_AT_MOST: usize = 512;

/// Browsers by a token of theirs, most specific first: Edge, Opera and Samsung Internet
/// also say `Chrome/`, and every Chromium browser also says `Safari/`.
const BROWSERS: [(&str, &str); 13] = [
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("YaBrowser/", "Yandex Browser"),
    ("Vivaldi/", "Vivaldi"),
    ("FxiOS/", "Firefox"),
    ("Firefox/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Version/", "Safari"),
];

/// Systems by a token of theirs, most specific first: an iPhone says `like Mac OS X`,
/// Android says `Linux`.
const SYSTEMS: [(&str, &str); 8] = [
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
];

/// Non-browser clients worth naming, matched at the start of the user agent.
const TOOLS: [(&str, &str); 3] = [
    ("curl/", "curl"),
    ("Wget/", "Wget"),
    ("python-requests/", "Python requests"),
];

/// The label for `user_agent` (see [`Requester::browser`]).
pub(crate) fn browser_label(user_agent: &str) -> Option<String> {
    let mut end = user_agent.len().min(READ_AT_MOST);
    while !user_agent.is_char_boundary(end) {
        end -= 1;
    }
    let ua = user_agent.get(..end)?;
    if let Some((_, tool)) = TOOLS.iter().find(|(token, _)| ua.starts_with(token)) {
        return Some((*tool).to_owned());
    }
    let found = |table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(token, _)| ua.contains(token))
            .map(|(_, name)| *name)
    };
    // `Version/` alone is not Safari: only beside WebKit's `Safari/`.
    let browser = found(&BROWSERS).filter(|name| *name != "Safari" || ua.contains("Safari/"));
    match (browser, found(&SYSTEMS)) {
        (Some(browser), Some(system)) => Some(format!("{browser} on {system}")),
        (Some(browser), None) => Some(browser.to_owned()),
        (None, Some(system)) => Some(format!("a browser on {system}")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_user_agents_get_short_labels() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 Edg/138.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/28.0 Chrome/130.0.0.0 Mobile Safari/537.36",
                "Samsung Internet on Android",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/138.0.7204.156 Mobile/15E148 Safari/604.1",
                "Chrome on iPhone",
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/140.0 Mobile/15E148 Safari/605.1.15",
                "Firefox on iPad",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 OPR/120.0.0.0",
                "Opera on Windows",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
                "Chrome on ChromeOS",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/138.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            ("curl/8.14.1", "curl"),
            ("Firefox/140", "Firefox"),
            ("Mozilla/5.0 (X11; Linux x86_64)", "a browser on Linux"),
        ];
        for (ua, label) in cases {
            assert_eq!(browser_label(ua).as_deref(), Some(label), "{ua}");
        }
    }

    #[test]
    fn unknown_or_hostile_user_agents_echo_nothing() {
        for ua in [
            "",
            "Version/1.0",
            "<script>alert(1)</script>",
            "SomeBot/1.0 (+https://example.com/bot)",
        ] {
            assert_eq!(browser_label(ua), None, "{ua:?}");
        }
        // Past the part that is read, nothing counts; multi-byte text is cut safely.
        let padded = format!("{}Firefox/140 (Windows)", "é".repeat(300));
        assert_eq!(browser_label(&padded), None);
        let long = format!("Firefox/140 {}", "<b>".repeat(100_000));
        assert_eq!(browser_label(&long).as_deref(), Some("Firefox"));
        let longest = BROWSERS.iter().map(|(_, b)| b.len()).max().unwrap_or(0)
            + " on ".len()
            + SYSTEMS.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
        assert!(longest <= 40, "{longest}");
    }
}
