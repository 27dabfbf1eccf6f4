//! The cold-start benchmark of issue 7: how long a function binary takes from
//! exec to its first request for an event, and how long its first invocation
//! takes, beside a hello-world `lambda_runtime` baseline.
//!
//! - [`runtime_api`]: a stand-in for the Lambda Runtime API on 127.0.0.1 that
//!   hands one event to one process and records when things happened.
//! - [`measure`]: one cold start of one binary: spawn it against its own
//!   stand-in, wait for the outcome, read its peak memory, kill it.
//! - [`report`]: medians, ratios to the baseline, and the Markdown table.
//!
//! The `coldstart` binary sets up the DM's functions (store, emulator) and runs
//! them round-robin; `hello-lambda` is the baseline.

pub mod measure;
pub mod report;
pub mod runtime_api;
