//! The suite: every test here runs once per framework.

pub mod common;

mod admin;
mod auth;
mod browser;
mod domains;
mod extract;
mod http;
pub mod manage;
mod matrix;
mod mfa;
mod passkeys;
mod protection;
pub mod provider;
mod saml;
mod sso;
mod takeovers;
