//! Starting `dm-local` against the emulator and running `ocadm` against it:
//! shared by the end-to-end tests and `examples/upgrade_bench.rs`.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Dm {
    child: Child,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// The emulator account (access key) this runner's AWS lives in.
    pub account: String,
}

impl Drop for Dm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A workspace binary, built next to this test or example: both run from a
/// folder (`deps/`, `examples/`) of the profile's directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|d| d.parent()).unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with cargo build -p local",
        path.display()
    );
    path
}

pub fn start_dm() -> Dm {
    start_dm_with(&[])
}

/// [`start_dm`] with more `dm-local up` options.
pub fn start_dm_with(extra: &[&str]) -> Dm {
    let emulator = emulator::shared();
    let account = emulator::fresh_account();
    let dir = std::env::temp_dir().join(format!("dm-e2e-{}-{account}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The defaults below, unless `extra` gives the same option.
    let defaults = [
        ("--port", "0"),
        ("--reconcile-interval", "2"),
        ("--sweep-interval", "1"),
        ("--agent-startup-ms", "300"),
    ];
    let mut args = vec!["up", "--aws-endpoint", emulator.endpoint()];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    let child = Command::new(bin("dm-local"))
        .args(&args)
        .args(extra)
        .arg("--data-dir")
        .arg(&dir)
        .env("AWS_ACCESS_KEY_ID", &account)
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("OKERA_S3_STAGING_DIR", format!("s3://dm-e2e-{account}/staging"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dm-local.log")).unwrap())
        .spawn()
        .unwrap();
    let env_file = dir.join("env");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env_file.exists() {
        assert!(
            Instant::now() < deadline,
            "dm-local did not start; see {}",
            dir.join("dm-local.log").display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    let env = std::fs::read_to_string(&env_file)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("OCADM_"))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Dm {
        child,
        dir,
        env,
        account,
    }
}

impl Dm {
    pub fn ocadm(&self, args: &[&str]) -> Output {
        self.ocadm_with(&[], args)
    }

    /// [`Dm::ocadm`] as dm-local's admin: failovers, drills and the default
    /// version need that role.
    pub fn admin(&self, args: &[&str]) -> String {
        let admin = self
            .env
            .iter()
            .find(|(k, _)| k == "OCADM_ADMIN_TOKEN")
            .map(|(_, v)| v.clone())
            .expect("dm-local up exports OCADM_ADMIN_TOKEN");
        let out = self.ocadm_with(&[("OCADM_TOKEN", &admin)], args);
        assert!(
            out.status.success(),
            "ocadm {args:?} (as admin) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// ocadm with dm-local's environment, and `vars` over it.
    pub fn ocadm_with(&self, vars: &[(&str, &str)], args: &[&str]) -> Output {
        let out = Command::new(bin("ocadm"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(vars.iter().copied())
            .env("OCADM_POLL_MS", "200")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "$ ocadm {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ocadm(args);
        assert!(
            out.status.success(),
            "ocadm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn refused(&self, args: &[&str], status: &str) -> String {
        let out = self.ocadm(args);
        assert!(!out.status.success(), "ocadm {args:?} should fail");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(&format!("(HTTP {status})")), "{err}");
        err
    }
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}
