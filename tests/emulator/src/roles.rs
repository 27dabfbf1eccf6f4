//! Holds a function's role in `infra/template.yaml` to the AWS calls the
//! function really made against the emulator: run a handler, take the
//! account's [`Emulator::requests`] before and after, and pass both to
//! [`assert_role_allows`]. `infra/tests/roles.py` (with the emulator's Python,
//! which has cfn-lint) reads the template and says what the role lacks.
//!
//! `infra/tests/test_template.py` checks the other direction: that a role
//! grants nothing the SDK calls of its function's adapters could not need.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::Emulator;

/// The calls in `after` beyond those in `before` (as [`Emulator::requests`]
/// names them), sorted.
pub fn calls_between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<String> {
    after
        .iter()
        .filter(|(call, n)| **n > before.get(*call).copied().unwrap_or(0))
        .map(|(call, _)| call.clone())
        .collect()
}

/// Panics unless the role of `function` (the template's logical id, such as
/// `ReconcilerFunction`) grants every call `account` made between the two
/// snapshots. At least one call must have been made: a check of none proves
/// nothing.
pub fn assert_role_allows(function: &str, before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) {
    let calls = calls_between(before, after);
    assert!(
        !calls.is_empty(),
        "{function} made no AWS call to check against its role"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/tests/roles.py");
    let python = crate::python().expect("the emulator's Python");
    let out = Command::new(python)
        .arg(&script)
        .arg(function)
        .args(&calls)
        .output()
        .expect("running infra/tests/roles.py");
    assert!(
        out.status.success(),
        "{function}'s role does not cover its calls {calls:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// [`Emulator::requests`] of `account`, for [`assert_role_allows`].
pub fn snapshot(emulator: &Emulator, account: &str) -> BTreeMap<String, u64> {
    emulator.requests(account).expect("the emulator's request counts")
}
