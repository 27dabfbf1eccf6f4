//! Integration tests of the state crate: the store on SQLite and MariaDB, the AWS
//! adapters and the reconciler against the emulator. One binary, one module per
//! concern.

mod adapters;
mod agents;
mod archive;
mod diagnostics;
mod dns;
mod failover;
mod health;
mod metrics;
mod reconcile;
mod runbooks;
mod store;
mod support;
