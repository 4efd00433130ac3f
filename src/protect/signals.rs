//! Suspicious sign-in signals: a new device, success after many failures, impossible
//! travel. Each is logged as `suspicious_sign_in` (its reason names the signal) and, for
//! an organization that asks, the owner is emailed ([`MessageKind::NewSignIn`]).
//!
//! The history is the login log: the account's latest events (at most
//! [`HISTORY`]). A device is "new" when no earlier sign-in came from the same browser and
//! system ([`device_name`]) on the same network (an IPv4 /24, an IPv6 /64); an account's
//! first sign-in is not new. Impossible travel needs a [`Locate`](crate::Locate) that
//! knows coordinates: the speed between the previous sign-in's place and this one's
//! exceeds [`Protection::impossible_travel_kmh`](crate::Protection::impossible_travel_kmh).

use std::net::IpAddr;

use crate::delivery::{Message, MessageKind, Recipient};
use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, PageRequest, RequestId, User};
use crate::{Error, RequestContext};

/// How many of the account's latest login-log events the signals read.
pub const HISTORY: u32 = 100;

/// A place on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    /// Latitude, -90 to 90.
    pub lat: f64,
    /// Longitude, -180 to 180.
    pub lon: f64,
}

impl Coordinates {
    /// The great-circle distance to `other`, in km.
    pub fn km_to(self, other: Coordinates) -> f64 {
        let (a, b) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = b - a;
        let dlon = (other.lon - self.lon).to_radians();
        let h = (dlat / 2.0).sin().powi(2) + a.cos() * b.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * 6371.0 * h.sqrt().clamp(0.0, 1.0).asin()
    }
}

/// A short, fixed name for a user agent's browser and system (`Firefox on Linux`), from
/// a small table: what notices show and what "the same device" compares. Never the raw
/// user agent, which the client chose.
pub fn device_name(user_agent: &str) -> String {
    let ua = user_agent.to_ascii_lowercase();
    let browser = [
        ("edg/", "Edge"),
        ("opr/", "Opera"),
        ("firefox/", "Firefox"),
        ("chromium/", "Chromium"),
        ("chrome/", "Chrome"),
        ("safari/", "Safari"),
        ("curl/", "curl"),
        ("python", "Python"),
        ("okhttp", "OkHttp"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map_or("Unknown browser", |(_, name)| name);
    let system = [
        ("android", "Android"),
        ("iphone", "iOS"),
        ("ipad", "iPadOS"),
        ("windows", "Windows"),
        ("mac os x", "macOS"),
        ("cros", "ChromeOS"),
        ("linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map_or("an unknown system", |(_, name)| name);
    format!("{browser} on {system}")
}

/// The network an address belongs to, for "the same device": an IPv4 /24, an IPv6 /64.
fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network(IpAddr::V4(v4)),
            None => super::ip_subject(ip),
        },
    }
}

fn same_device(event: &AuthEvent, ctx: &RequestContext) -> bool {
    let name = |ua: Option<&str>| ua.map(device_name);
    name(event.user_agent.as_deref()) == name(ctx.user_agent.as_deref())
        && event.ip.map(network) == ctx.ip.map(network)
}

/// Works out the signals of a sign-in about to complete for `user`, logs each, and emails
/// the owner when `email` and a signal fired. Returns the signals' names.
pub(crate) async fn on_sign_in(
    inner: &Inner,
    user: &User,
    email: bool,
    ctx: &RequestContext,
) -> Result<Vec<&'static str>, Error> {
    let page = inner
        .audit_log
        .list_user_events(user.id, &PageRequest::first(HISTORY))
        .await?;
    let events = &page.items;
    let mut signals = Vec::new();
    let earlier: Vec<&AuthEvent> = events
        .iter()
        .filter(|e| e.kind == AuthEventKind::SignIn)
        .collect();
    if !earlier.is_empty() && !earlier.iter().any(|e| same_device(e, ctx)) {
        signals.push("new_device");
    }
    let failures = events
        .iter()
        .take_while(|e| e.kind != AuthEventKind::SignIn)
        .filter(|e| e.kind == AuthEventKind::SignInFailed)
        .count();
    let many = inner.config.config.limits.failures_per_account_ip.max / 2;
    if failures >= many.max(1) as usize {
        signals.push("after_failures");
    }
    if let (Some(last), Some(locate), Some(here)) = (earlier.first(), &inner.locate, ctx.ip)
        && let (Some(from), Some(to)) = (
            last.ip.and_then(|ip| locate.coordinates(ip)),
            locate.coordinates(here),
        )
    {
        let now = inner.clock.now();
        let hours = now.duration_since(last.at).as_secs_f64() / 3600.0;
        let km = from.km_to(to);
        let limit = f64::from(inner.config.config.protection.impossible_travel_kmh);
        // Within 50 km is one metro area whatever the clock says (and GeoIP's error).
        if km > 50.0 && km > limit * hours {
            signals.push("impossible_travel");
        }
    }
    let now = inner.clock.now();
    for signal in &signals {
        let event = AuthEvent::new(AuthEventKind::SuspiciousSignIn, ctx, now)
            .with_user(user.id)
            .with_reason(signal);
        inner.audit_log.append(&event).await?;
    }
    if email && !signals.is_empty() {
        notify(inner, user, ctx).await;
    }
    Ok(signals)
}

async fn notify(inner: &Inner, user: &User, ctx: &RequestContext) {
    let Some(email) = user.email.clone().filter(|_| user.email_verified) else {
        return;
    };
    if inner.mailer.is_none() {
        return;
    }
    let message = Message {
        kind: MessageKind::NewSignIn,
        to: Recipient::Email(email),
        link: None,
        code: None,
        expires_in: std::time::Duration::ZERO,
        locale: ctx.locale.clone(),
        org_id: ctx.org_id,
        request_id: RequestId::generate(),
        activity: Some(super::guard::activity(ctx, inner.clock.now())),
    };
    if let Err(err) = crate::delivery::send::send_message(inner, message).await {
        tracing::warn!(user_id = %user.id, error = %err, "could not send a new sign-in notice");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_by_browser_and_system() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(device_name(firefox), "Firefox on Linux");
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like \
                      Gecko) Chrome/126.0 Safari/537.36";
        assert_eq!(device_name(chrome), "Chrome on Windows");
        let edge = format!("{chrome} Edg/126.0");
        assert_eq!(device_name(&edge), "Edge on Windows");
        assert_eq!(
            device_name("<script>"),
            "Unknown browser on an unknown system"
        );
    }

    #[test]
    fn networks_are_a_v4_slash_24_or_a_v6_slash_64() {
        assert_eq!(network("203.0.113.7".parse().unwrap()), "203.0.113.0/24");
        assert_eq!(
            network("::ffff:203.0.113.7".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            network("2001:db8:1:2::9".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn distances_are_great_circle_km() {
        let paris = Coordinates {
            lat: 48.8566,
            lon: 2.3522,
        };
        let tokyo = Coordinates {
            lat: 35.6762,
            lon: 139.6503,
        };
        let km = paris.km_to(tokyo);
        assert!((9_700.0..9_740.0).contains(&km), "{km}");
        assert!(paris.km_to(paris) < 1e-9);
    }
}
