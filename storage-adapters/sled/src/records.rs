//! The compact layouts (format version 2) of the records there are millions of: users,
//! sessions, organizations. Ids and hashes are raw bytes, integers varints, text after
//! its length; options and booleans are bits of one flags byte, and a field that is
//! absent takes no byte at all. Later timestamps are stored as their distance from
//! `created_at`. A flag bit this version does not define fails closed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use portcullis::crypto::SecretHash;
use portcullis::model::{Organization, PasswordHash, Session, User};
use portcullis::{Email, OrgId, Phone, SessionId, UserId};

use crate::codec::{Reader, Record, Writer};

/// A flag bit when `on`.
fn bit(on: bool, bit: u8) -> u8 {
    if on { bit } else { 0 }
}

/// A field read only when its flag bit is set.
fn when<T>(present: bool, read: impl FnOnce() -> Option<T>) -> Option<Option<T>> {
    if present {
        read().map(Some)
    } else {
        Some(None)
    }
}

/// A flags byte with no bit outside `known`.
fn flags(input: &mut Reader<'_>, known: u8) -> Option<u8> {
    input.byte().filter(|flags| flags & !known == 0)
}

const EMAIL: u8 = 1;
const EMAIL_VERIFIED: u8 = 1 << 1;
const PHONE: u8 = 1 << 2;
const PHONE_VERIFIED: u8 = 1 << 3;
const NAME: u8 = 1 << 4;
const PASSWORD: u8 = 1 << 5;
const BLOCKED: u8 = 1 << 6;
const LOCKED: u8 = 1 << 7;

/// | field | bytes |
/// |---|---|
/// | flags | 1 (email, email verified, phone, phone verified, name, password, blocked, locked) |
/// | id | 16 |
/// | created_at | varint (zigzag ms) |
/// | updated_at | varint from created_at |
/// | revision, security_stamp | varint each |
/// | email, phone, name, password_hash | length + UTF-8 each, if flagged |
/// | locked_until | varint from created_at, if flagged |
/// | metadata | length + JSON (`null`: length 0) |
impl Record for User {
    const WHAT: &'static str = "user";

    fn write(&self, out: &mut Writer) {
        out.byte(
            bit(self.email.is_some(), EMAIL)
                | bit(self.email_verified, EMAIL_VERIFIED)
                | bit(self.phone.is_some(), PHONE)
                | bit(self.phone_verified, PHONE_VERIFIED)
                | bit(self.name.is_some(), NAME)
                | bit(self.password_hash.is_some(), PASSWORD)
                | bit(self.blocked, BLOCKED)
                | bit(self.locked_until.is_some(), LOCKED),
        );
        out.bytes(self.id.as_bytes());
        out.time(self.created_at);
        out.time_since(self.created_at, self.updated_at);
        out.uint(self.revision);
        out.uint(self.security_stamp);
        if let Some(email) = &self.email {
            out.str(email.as_str());
        }
        if let Some(phone) = &self.phone {
            out.str(phone.as_str());
        }
        if let Some(name) = &self.name {
            out.str(name);
        }
        if let Some(hash) = &self.password_hash {
            out.str(hash.as_str());
        }
        if let Some(until) = self.locked_until {
            out.time_since(self.created_at, until);
        }
        out.json(&self.metadata);
    }

    fn read(input: &mut Reader<'_>) -> Option<Self> {
        let flags = flags(input, u8::MAX)?;
        let has = |bit: u8| flags & bit != 0;
        let id = UserId::from_uuid(input.uuid()?);
        let created_at = input.time()?;
        let updated_at = input.time_since(created_at)?;
        let revision = input.uint()?;
        let security_stamp = input.uint()?;
        // Addresses are checked again, as when they were first stored.
        let email = when(has(EMAIL), || Email::parse(input.str()?).ok())?;
        let phone = when(has(PHONE), || Phone::parse(input.str()?).ok())?;
        let name = when(has(NAME), || input.str().map(str::to_owned))?;
        let password_hash = when(has(PASSWORD), || input.str().map(PasswordHash::new))?;
        let locked_until = when(has(LOCKED), || input.time_since(created_at))?;
        let metadata = input.json()?;
        Some(User {
            id,
            email,
            email_verified: has(EMAIL_VERIFIED),
            phone,
            phone_verified: has(PHONE_VERIFIED),
            name,
            metadata,
            password_hash,
            blocked: has(BLOCKED),
            locked_until,
            created_at,
            updated_at,
            revision,
            security_stamp,
        })
    }
}

const ORG: u8 = 1;
const IPV4: u8 = 1 << 1;
const IPV6: u8 = 1 << 2;
const USER_AGENT: u8 = 1 << 3;
const REVOKED: u8 = 1 << 4;

/// | field | bytes |
/// |---|---|
/// | flags | 1 (org, IPv4, IPv6, user agent, revoked) |
/// | id, user_id | 16 each |
/// | org_id | 16, if flagged |
/// | refresh_hash | 32 |
/// | generation | varint |
/// | aal | 1 |
/// | amr | count, then length + UTF-8 each |
/// | ip | 4 or 16, if flagged |
/// | user_agent | length + UTF-8, if flagged |
/// | created_at | varint (zigzag ms) |
/// | last_seen_at, expires_at | varint from created_at each |
/// | revoked_at | varint from created_at, if flagged |
impl Record for Session {
    const WHAT: &'static str = "session";

    fn write(&self, out: &mut Writer) {
        out.byte(
            bit(self.org_id.is_some(), ORG)
                | bit(matches!(self.ip, Some(IpAddr::V4(_))), IPV4)
                | bit(matches!(self.ip, Some(IpAddr::V6(_))), IPV6)
                | bit(self.user_agent.is_some(), USER_AGENT)
                | bit(self.revoked_at.is_some(), REVOKED),
        );
        out.bytes(self.id.as_bytes());
        out.bytes(self.user_id.as_bytes());
        if let Some(org) = self.org_id {
            out.bytes(org.as_bytes());
        }
        out.bytes(self.refresh_hash.as_bytes());
        out.uint(self.generation);
        out.byte(self.aal);
        out.strs(&self.amr);
        match self.ip {
            Some(IpAddr::V4(ip)) => out.bytes(&ip.octets()),
            Some(IpAddr::V6(ip)) => out.bytes(&ip.octets()),
            None => {}
        }
        if let Some(agent) = &self.user_agent {
            out.str(agent);
        }
        out.time(self.created_at);
        out.time_since(self.created_at, self.last_seen_at);
        out.time_since(self.created_at, self.expires_at);
        if let Some(revoked) = self.revoked_at {
            out.time_since(self.created_at, revoked);
        }
    }

    fn read(input: &mut Reader<'_>) -> Option<Self> {
        let flags = flags(input, ORG | IPV4 | IPV6 | USER_AGENT | REVOKED)?;
        let has = |bit: u8| flags & bit != 0;
        let id = SessionId::from_uuid(input.uuid()?);
        let user_id = UserId::from_uuid(input.uuid()?);
        let org_id = when(has(ORG), || input.uuid().map(OrgId::from_uuid))?;
        let refresh_hash = SecretHash::from_bytes(input.array()?);
        let generation = input.uint()?;
        let aal = input.byte()?;
        let amr = input.strs()?;
        let ip = match (has(IPV4), has(IPV6)) {
            (false, false) => None,
            (true, false) => Some(IpAddr::V4(Ipv4Addr::from(input.array::<4>()?))),
            (false, true) => Some(IpAddr::V6(Ipv6Addr::from(input.array::<16>()?))),
            (true, true) => return None,
        };
        let user_agent = when(has(USER_AGENT), || input.str().map(str::to_owned))?;
        let created_at = input.time()?;
        let last_seen_at = input.time_since(created_at)?;
        let expires_at = input.time_since(created_at)?;
        let revoked_at = when(has(REVOKED), || input.time_since(created_at))?;
        Some(Session {
            id,
            user_id,
            org_id,
            refresh_hash,
            generation,
            amr,
            aal,
            ip,
            user_agent,
            created_at,
            last_seen_at,
            expires_at,
            revoked_at,
        })
    }
}

/// | field | bytes |
/// |---|---|
/// | id | 16 |
/// | name, slug | length + UTF-8 each |
/// | domains | count, then length + UTF-8 each |
/// | created_at | varint (zigzag ms) |
/// | updated_at | varint from created_at |
/// | revision | varint |
/// | settings | length + JSON (`null`: length 0) |
impl Record for Organization {
    const WHAT: &'static str = "organization";

    fn write(&self, out: &mut Writer) {
        out.bytes(self.id.as_bytes());
        out.str(&self.name);
        out.str(&self.slug);
        out.strs(&self.domains);
        out.time(self.created_at);
        out.time_since(self.created_at, self.updated_at);
        out.uint(self.revision);
        out.json(&self.settings);
    }

    fn read(input: &mut Reader<'_>) -> Option<Self> {
        let id = OrgId::from_uuid(input.uuid()?);
        let name = input.str()?.to_owned();
        let slug = input.str()?.to_owned();
        let domains = input.strs()?;
        let created_at = input.time()?;
        let updated_at = input.time_since(created_at)?;
        let revision = input.uint()?;
        let settings = input.json()?;
        Some(Organization {
            id,
            name,
            slug,
            domains,
            settings,
            created_at,
            updated_at,
            revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use portcullis::model::{OrgId, SessionId, UserId};
    use portcullis::{StoreError, Timestamp};
    use serde::Serialize;

    use super::*;
    use crate::codec::{dec_record, enc_record};

    const NOW: Timestamp = Timestamp::from_unix_millis(1_733_000_000_123);

    fn full_user() -> User {
        User {
            id: UserId::generate(),
            email: Some(Email::parse("Ada@Example.com").unwrap()),
            email_verified: true,
            phone: Some(Phone::parse("+44 20 7946 0958").unwrap()),
            phone_verified: true,
            name: Some("Ada Lovelace — ☕".to_owned()),
            metadata: serde_json::json!({"plan": "pro", "seats": [1, 2.5, null]}),
            password_hash: Some(PasswordHash::new(
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            )),
            blocked: true,
            locked_until: Some(NOW - std::time::Duration::from_secs(90)),
            created_at: NOW,
            updated_at: Timestamp::from_unix_millis(i64::MAX),
            revision: u64::MAX,
            security_stamp: 300,
        }
    }

    fn full_session() -> Session {
        Session {
            id: SessionId::generate(),
            user_id: UserId::generate(),
            org_id: Some(OrgId::generate()),
            refresh_hash: SecretHash::from_bytes([0xa5; 32]),
            generation: 1_000_000,
            amr: vec!["pwd".to_owned(), "otp".to_owned()],
            aal: 2,
            ip: Some("2001:db8::1".parse().unwrap()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".to_owned()),
            created_at: NOW,
            last_seen_at: NOW + std::time::Duration::from_secs(3600),
            expires_at: NOW + std::time::Duration::from_secs(30 * 86_400),
            revoked_at: Some(Timestamp::from_unix_millis(i64::MIN)),
        }
    }

    fn minimal_session() -> Session {
        Session {
            org_id: None,
            amr: Vec::new(),
            ip: None,
            user_agent: None,
            revoked_at: None,
            ..full_session()
        }
    }

    fn full_org() -> Organization {
        Organization {
            id: OrgId::generate(),
            name: "Acme, Inc.".to_owned(),
            slug: "acme".to_owned(),
            domains: vec!["acme.example".to_owned(), "acme.test".to_owned()],
            settings: serde_json::json!({"mfa": "required", "branding": {"color": "#c0ffee"}}),
            created_at: NOW,
            updated_at: NOW + std::time::Duration::from_millis(1),
            revision: 12,
        }
    }

    fn minimal_org() -> Organization {
        Organization {
            name: String::new(),
            domains: Vec::new(),
            settings: serde_json::Value::Null,
            ..full_org()
        }
    }

    fn round_trips<T: Record + Serialize + PartialEq + Debug>(record: &T) {
        let bytes = enc_record(record);
        assert_eq!(bytes.first(), Some(&2), "written as version 2");
        assert_eq!(&dec_record::<T>(&bytes).unwrap(), record);
        let json = crate::codec::enc(record).unwrap();
        assert_eq!(
            &dec_record::<T>(&json).unwrap(),
            record,
            "version 1 still reads"
        );
    }

    fn fails_closed<T: Record + Debug>(bytes: &[u8]) {
        match dec_record::<T>(bytes) {
            Err(StoreError::Corrupt { what }) => assert_eq!(what, T::WHAT),
            other => panic!("{} bytes {bytes:?} decoded: {other:?}", bytes.len()),
        }
    }

    fn fails_closed_when_cut_or_extended<T: Record + Debug>(record: &T) {
        let bytes = enc_record(record);
        for len in 0..bytes.len() {
            fails_closed::<T>(&bytes[..len]);
        }
        for garbage in [0u8, 1, 0xff] {
            fails_closed::<T>(&[bytes.as_slice(), &[garbage]].concat());
        }
        for version in [0u8, 3, 0xff] {
            fails_closed::<T>(&[&[version], &bytes[1..]].concat());
        }
    }

    #[test]
    fn users_round_trip_full_and_minimal() {
        for user in [full_user(), User::new(UserId::generate(), NOW)] {
            round_trips(&user);
        }
    }

    #[test]
    fn sessions_round_trip_full_and_minimal() {
        let v4 = Session {
            ip: Some("203.0.113.7".parse().unwrap()),
            ..full_session()
        };
        for session in [full_session(), minimal_session(), v4] {
            round_trips(&session);
        }
    }

    #[test]
    fn organizations_round_trip_full_and_minimal() {
        for org in [full_org(), minimal_org()] {
            round_trips(&org);
        }
    }

    #[test]
    fn every_cut_trailing_byte_or_unknown_version_fails_closed() {
        for user in [full_user(), User::new(UserId::generate(), NOW)] {
            fails_closed_when_cut_or_extended(&user);
        }
        for session in [full_session(), minimal_session()] {
            fails_closed_when_cut_or_extended(&session);
        }
        for org in [full_org(), minimal_org()] {
            fails_closed_when_cut_or_extended(&org);
        }
    }

    /// The bytes of a user with an email address, one field per line: the layout itself.
    #[test]
    fn a_user_is_laid_out_field_by_field() {
        let mut user = User::new(UserId::generate(), NOW);
        user.email = Some(Email::parse("ab@c.io").unwrap());
        user.updated_at = NOW + std::time::Duration::from_millis(5);
        user.revision = 1;
        let expected = [
            &[2][..],                                       // format version
            &[EMAIL],                                       // flags
            user.id.as_bytes(),                             // id
            &[0xf6, 0xc9, 0xcb, 0xed, 0xef, 0x64],          // created_at, zigzag varint
            &[10],                                          // updated_at: +5 ms, zigzag
            &[1],                                           // revision
            &[0],                                           // security_stamp
            &[7, b'a', b'b', b'@', b'c', b'.', b'i', b'o'], // email
            &[0],                                           // metadata: null
        ]
        .concat();
        assert_eq!(enc_record(&user), expected);
    }

    #[test]
    fn a_typical_user_is_a_fifth_of_its_json() {
        let mut user = User::new(UserId::generate(), NOW);
        user.email = Some(Email::parse("user500000@example.com").unwrap());
        user.name = Some("User 500000".to_owned());
        let compact = enc_record(&user).len();
        let json = crate::codec::enc(&user).unwrap().len();
        assert!(
            compact <= 70 && compact * 4 < json,
            "{compact} vs {json} bytes"
        );
    }

    #[test]
    fn an_address_that_does_not_parse_fails_closed() {
        let mut user = User::new(UserId::generate(), NOW);
        user.email = Some(Email::parse("ab@c.io").unwrap());
        let bytes = enc_record(&user);
        let at = bytes.iter().position(|&b| b == b'@').unwrap();
        let mut no_at = bytes.clone();
        no_at[at] = b'_';
        fails_closed::<User>(&no_at);
        let mut not_utf8 = bytes;
        not_utf8[at] = 0xff;
        fails_closed::<User>(&not_utf8);
    }

    #[test]
    fn an_undefined_flag_or_both_ip_versions_fail_closed() {
        let bytes = enc_record(&minimal_session());
        for flags in [1 << 5, 1 << 7, IPV4 | IPV6] {
            let mut flagged = bytes.clone();
            flagged[1] = flags;
            fails_closed::<Session>(&flagged);
        }
    }

    #[test]
    fn bad_metadata_json_fails_closed() {
        let user = User::new(UserId::generate(), NOW);
        let mut bytes = enc_record(&user);
        bytes.pop();
        bytes.extend([1, b'{']);
        fails_closed::<User>(&bytes);
    }

    /// Version 1 as the release before version 2 wrote it: `serde_json` of the model.
    #[test]
    fn version_1_records_as_written_before_still_read() {
        let user = br#"{"id":"01939a3c-5f8e-7cc0-9a4e-0123456789ab","email":"ada@example.com","email_verified":true,"phone":"+442079460958","phone_verified":false,"name":"Ada","metadata":{"plan":"pro"},"password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA","blocked":false,"locked_until":null,"created_at":1733000000123,"updated_at":1733000000999,"revision":3,"security_stamp":2}"#;
        let user: User = dec_record(&[&[1][..], user].concat()).unwrap();
        assert_eq!(user.id.to_string(), "01939a3c-5f8e-7cc0-9a4e-0123456789ab");
        assert_eq!(user.email.unwrap().as_str(), "ada@example.com");
        assert_eq!(user.phone.unwrap().as_str(), "+442079460958");
        assert_eq!(user.metadata, serde_json::json!({"plan": "pro"}));
        assert_eq!(user.updated_at.unix_millis(), 1_733_000_000_999);
        assert_eq!((user.revision, user.security_stamp), (3, 2));

        let hash = (0..32).map(|n| n.to_string()).collect::<Vec<_>>().join(",");
        let session = format!(
            r#"{{"id":"01939a3c-5f8e-7cc0-9a4e-0123456789ac","user_id":"01939a3c-5f8e-7cc0-9a4e-0123456789ab","org_id":null,"refresh_hash":[{hash}],"generation":4,"amr":["pwd"],"aal":1,"ip":"203.0.113.7","user_agent":"curl/8","created_at":1733000000123,"last_seen_at":1733000000124,"expires_at":1735592000123,"revoked_at":null}}"#
        );
        let session: Session = dec_record(&[&[1][..], session.as_bytes()].concat()).unwrap();
        assert_eq!(session.refresh_hash.as_bytes()[31], 31);
        assert_eq!(session.ip, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(session.generation, 4);

        let org = br#"{"id":"01939a3c-5f8e-7cc0-9a4e-0123456789ad","name":"Acme","slug":"acme","domains":["acme.example"],"settings":null,"created_at":1733000000123,"updated_at":1733000000123,"revision":0}"#;
        let org: Organization = dec_record(&[&[1][..], org].concat()).unwrap();
        assert_eq!(org.domains, ["acme.example"]);
        assert_eq!(org.settings, serde_json::Value::Null);
    }
}
