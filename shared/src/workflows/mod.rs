//! Workflows: plain functions over the store and the cloud ports. The API's
//! commands ([`commands`]) record desired state and an operation; the reconciler
//! ([`reconcile`]) converges AWS toward it. [`lifecycle`] lets nodes join once
//! their agent is ready and leave once their logs are flushed; [`sweep`] judges
//! every cluster's health each minute, and repairs broken nodes. [`runbook`] runs
//! persisted step machines: upgrades by replacement, rollbacks and restarts;
//! [`failover`] moves the DM and its clusters to another region, and drills it.

pub mod archive;
pub mod commands;
pub mod diagnostics;
pub mod failover;
pub mod kill;
pub mod lifecycle;
pub mod reconcile;
pub mod retention;
pub mod rotation;
pub mod runbook;
pub mod sweep;
pub mod wake;
