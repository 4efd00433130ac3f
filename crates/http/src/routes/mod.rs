//! One handler per route of the REST API, each a plain
//! `async fn(&Portcullis, RequestContext, Req) -> HttpResult<Resp>`, where `Req` is what
//! the route reads from the request ([`FromCall`](crate::FromCall)). [`routes()`](crate::routes())
//! lists them with their methods and paths.

pub mod account;
pub mod admin;
pub mod apps;
pub mod directory;
pub mod mfa;
pub mod passkeys;
pub mod passwordless;
pub mod protection;
pub mod provider;
pub mod sso;
pub mod tokens;
