//! The suite: every test here runs once per framework.

pub mod common;

mod admin;
mod auth;
mod extract;
mod http;
mod manage;
mod mfa;
mod passkeys;
mod protection;
pub mod provider;
mod saml;
mod sso;
mod takeovers;
