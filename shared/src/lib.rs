//! The state crate of the Deployment Manager: everything the Lambda functions,
//! the local runner and the tests share.
//!
//! - [`domain`]: values that parse themselves (names, CIDRs, cluster specs), the
//!   security-group rule table and tagging. Pure, no I/O.
//! - [`store`]: the state store over SQLite or MySQL/Aurora, with forward-only
//!   migrations, optimistic versions and leases.
//! - [`cloud`]: one port per AWS system (compute, scaling, object store) and, behind
//!   cargo features, the real adapters over the AWS SDK.
//! - [`workflows`]: plain functions over the store and the ports. The API's
//!   commands and the reconciler live here; handlers only parse and call them.
//! - [`config`]: typed settings read once from the environment.
//! - [`runtime`]: what every function's `main` does first (logging, lease owner).
//! - [`metrics`]: CloudWatch metrics as EMF log lines, and the cluster health alarm.

pub mod cloud;
pub mod config;
pub mod domain;
pub mod metrics;
pub mod runtime;
pub mod store;
pub mod time;
pub mod workflows;
