//! Integration tests of the REST API (docs/api.md is the contract), in one test
//! binary. Every behavioural test runs on SQLite and on MariaDB
//! (`testkit::all_backends()`), each with a fresh database; tests that need a
//! READY environment get one the real way: created through the API, then
//! reconciled once against the moto emulator under an AWS account of their own.
//! `auth.rs` tests bearer tokens and roles, `iam.rs` the IAM mode of Lambda.

mod auth;
mod bodies;
mod clusters;
mod diagnostics;
mod environments;
mod events;
mod health;
mod iam;
mod idempotency;
mod ids;
mod regions;
mod runbooks;
mod support;
mod wake;
mod writes;
