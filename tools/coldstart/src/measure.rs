//! One cold start: spawn a function binary with the environment Lambda gives a
//! custom runtime, against a [`RuntimeApi`] of its own; wait for its first
//! invocation's outcome; read its peak memory; kill it.
//!
//! - **init**: from just before the exec to the first `GET .../next`;
//! - **first invocation**: from handing out the event to the response's
//!   arrival (its body read);
//! - **peak RSS**: `VmHWM` of `/proc/<pid>/status` after the response, while
//!   the process waits for its next event (so Linux only).
//!
//! A run that does not answer, answers with an error, or exits is a
//! [`Failure`], never a silent skip. Every run ends on its own: the process is
//! killed after the response or once `timeout` has passed since the exec.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::runtime_api::{Invocation, Outcome, RuntimeApi, Timeline};

/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`: the template's `MemorySize`. Only
/// reported to the function; nothing here limits its memory.
pub const MEMORY_SIZE_MB: u32 = 256;

/// What to start, and how.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    /// `AWS_LAMBDA_FUNCTION_NAME`, also in the invoked ARN.
    pub function_name: String,
    /// The function's own variables (configuration, credentials), set after
    /// the Lambda ones (so they may override them). Nothing else of this
    /// process's environment is passed on.
    pub env: Vec<(String, String)>,
    /// `AWS_LAMBDA_LOG_STREAM_NAME`: one per execution environment in Lambda.
    pub log_stream: String,
    /// The first event.
    pub event: Vec<u8>,
    /// The most the whole run may take, from the exec.
    pub timeout: Duration,
    /// Where the process's stdout and stderr go (appended); `None` drops them.
    pub log: Option<PathBuf>,
}

/// The figures of one successful cold start.
#[derive(Debug, Clone)]
pub struct ColdStart {
    /// Exec to the first `GET .../next`.
    pub init: Duration,
    /// Event handed out to response in.
    pub invocation: Duration,
    /// `VmHWM` after the invocation, in bytes.
    pub peak_rss: u64,
    /// The handler's result.
    pub response: String,
}

/// Where a failed run was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// It had not asked for an event yet.
    Init,
    /// It had the event and had not answered.
    Invocation,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Init => "before it asked for an event",
            Stage::Invocation => "before it answered the event",
        })
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("could not start the Runtime API stand-in on 127.0.0.1")]
    RuntimeApi(#[source] io::Error),
    #[error("could not open the log {}", .0.display())]
    Log(PathBuf, #[source] io::Error),
    #[error("could not start {}; build it first", .0.display())]
    Spawn(PathBuf, #[source] io::Error),
    #[error("the process exited ({status}) {stage}")]
    Exited { status: ExitStatus, stage: Stage },
    #[error("no answer within {after:?} of the exec: the process hung {stage}")]
    TimedOut { after: Duration, stage: Stage },
    #[error("the runtime reported an init error ({error_type}): {body}")]
    InitError { error_type: String, body: String },
    #[error("the invocation failed ({error_type}): {body}")]
    InvocationError { error_type: String, body: String },
    #[error("could not wait for the process")]
    Wait(#[source] io::Error),
    #[error("could not read the peak memory of process {pid}")]
    Memory { pid: u32, source: io::Error },
}

/// A request id unique to this process, in the UUID form Lambda uses.
fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "c01d57a7-0000-4000-8000-{:012x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The variables Lambda sets for a `provided.al2023` function, as
/// `lambda_runtime` reads them (it requires the first four).
fn lambda_env(launch: &Launch, api: &RuntimeApi) -> Vec<(String, String)> {
    let name = &launch.function_name;
    let task_root = launch.program.parent().map(Path::to_path_buf).unwrap_or_default();
    [
        ("AWS_LAMBDA_RUNTIME_API", api.addr().to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_SIZE_MB.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", launch.log_stream.clone()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".into()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("_HANDLER", "bootstrap".into()),
        ("TZ", ":UTC".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `VmHWM` of a live process, in bytes.
pub fn peak_rss(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_hwm(&status)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmHWM line in /proc/<pid>/status"))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn stage(timeline: &Timeline) -> Stage {
    if timeline.first_next.is_some() {
        Stage::Invocation
    } else {
        Stage::Init
    }
}

/// The child process; killed and reaped when dropped, so that no run leaves
/// one behind (it would wait for its next event forever).
struct Process(std::process::Child);

impl Process {
    /// Waits for the process to exit. Polled (std's `Child` has no async
    /// wait, and Tokio's would change the Tokio the functions are built with
    /// here); the poll only notices a failure sooner or later, it times nothing.
    async fn exited(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.0.try_wait()? {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Kills the process (if it still runs) and reaps it.
    async fn end(&mut self) -> io::Result<ExitStatus> {
        let _ = self.0.kill();
        self.exited().await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs one cold start of `launch.program`.
pub async fn cold_start(launch: &Launch) -> Result<ColdStart, Failure> {
    let api = RuntimeApi::start(Invocation {
        request_id: request_id(),
        function_arn: format!(
            "arn:aws:lambda:us-west-2:123456789012:function:{}",
            launch.function_name
        ),
        timeout: launch.timeout,
        event: launch.event.clone(),
    })
    .await
    .map_err(Failure::RuntimeApi)?;

    let mut command = std::process::Command::new(&launch.program);
    command
        .env_clear()
        .envs(lambda_env(launch, &api))
        .envs(launch.env.iter().cloned())
        .stdin(Stdio::null());
    match &launch.log {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Failure::Log(path.clone(), e))?;
            let err = file.try_clone().map_err(|e| Failure::Log(path.clone(), e))?;
            command.stdout(file).stderr(err);
        }
        None => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }

    let exec = Instant::now();
    let mut child = Process(
        command
            .spawn()
            .map_err(|e| Failure::Spawn(launch.program.clone(), e))?,
    );
    let pid = child.0.id();
    let deadline = tokio::time::Instant::from_std(exec + launch.timeout);
    let ended = tokio::select! {
        () = api.answered() => None,
        status = child.exited() => Some(status),
        () = tokio::time::sleep_until(deadline) => {
            let _ = child.end().await;
            return Err(Failure::TimedOut { after: launch.timeout, stage: stage(&api.timeline()) });
        }
    };
    // Read the peak while the process waits for its next event, then end it.
    let rss = ended
        .is_none()
        .then(|| peak_rss(pid).map_err(|source| Failure::Memory { pid, source }));
    let reaped = child.end().await;
    let timeline = api.timeline();
    drop(api);

    let failed_stage = stage(&timeline);
    let exited = || match ended.unwrap_or(reaped) {
        Ok(status) => Failure::Exited {
            status,
            stage: failed_stage,
        },
        Err(e) => Failure::Wait(e),
    };
    match timeline.outcome {
        Some((answered_at, Outcome::Response(response))) => {
            let (Some(first_next), Some(handed_out), Some(rss)) =
                (timeline.first_next, timeline.handed_out, rss)
            else {
                // Answered and gone at once: not a function that waits for its next event.
                return Err(exited());
            };
            Ok(ColdStart {
                init: first_next - exec,
                invocation: answered_at - handed_out,
                peak_rss: rss?,
                response,
            })
        }
        Some((_, Outcome::Error { error_type, body })) => Err(Failure::InvocationError { error_type, body }),
        Some((_, Outcome::InitError { error_type, body })) => Err(Failure::InitError { error_type, body }),
        None => Err(exited()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_read_from_vm_hwm_in_kib() {
        let status = "Name:\thello\nVmPeak:\t  10000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2 * 1024 * 1024));
        assert_eq!(parse_vm_hwm("Name:\thello\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\t lots kB\n"), None);
    }

    #[test]
    fn request_ids_are_unique_and_fit_a_url_path() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'), "{a}");
    }
}
