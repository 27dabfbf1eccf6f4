//! Workflows: plain functions over the store and the cloud ports. The API's
//! commands ([`commands`]) record desired state and an operation; the reconciler
//! ([`reconcile`]) converges AWS toward it.

pub mod commands;
pub mod reconcile;
