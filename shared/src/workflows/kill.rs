//! Named stopping points between a workflow's steps. A workflow that must survive
//! being killed at any step calls [`KillSwitch::check`] between its steps; tests
//! set the switch to stop it there, with no clean-up, as a crash would, and then
//! run it again. In production the switch is off and `check` always passes.

/// Where a workflow stops early, if anywhere; and, for tests of races, what
/// happens in the world while the workflow is at a step.
#[derive(Clone, Default)]
pub struct KillSwitch {
    stop_at: Option<String>,
    meanwhile: Option<(String, Meanwhile)>,
}

/// Something a test does while a workflow waits at a step (another writer).
pub type Meanwhile = std::sync::Arc<dyn Fn() -> crate::workflows::wake::BoxFuture + Send + Sync>;

impl std::fmt::Debug for KillSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KillSwitch")
            .field("stop_at", &self.stop_at)
            .field("meanwhile_at", &self.meanwhile.as_ref().map(|(step, _)| step))
            .finish()
    }
}

/// The workflow stopped at a kill switch, leaving whatever it had done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("killed at step {0:?}")]
pub struct Killed(pub String);

impl KillSwitch {
    /// Never stops.
    pub fn off() -> KillSwitch {
        KillSwitch::default()
    }

    /// Stops the first time the workflow reaches `step`.
    pub fn at(step: &str) -> KillSwitch {
        KillSwitch {
            stop_at: Some(step.to_owned()),
            meanwhile: None,
        }
    }

    /// Runs `f` each time the workflow reaches `step`, before it goes on.
    pub fn meanwhile(step: &str, f: Meanwhile) -> KillSwitch {
        KillSwitch {
            stop_at: None,
            meanwhile: Some((step.to_owned(), f)),
        }
    }

    /// `Err(Killed)` when this is the step to stop at.
    pub fn check(&self, step: &str) -> Result<(), Killed> {
        match &self.stop_at {
            Some(at) if at == step => Err(Killed(step.to_owned())),
            _ => Ok(()),
        }
    }

    /// [`KillSwitch::check`], after running what a test set to happen at `step`.
    pub async fn reached(&self, step: &str) -> Result<(), Killed> {
        if let Some((at, f)) = &self.meanwhile {
            if at == step {
                f().await;
            }
        }
        self.check(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_only_at_its_step() {
        assert!(KillSwitch::off().check("upload").is_ok());
        let switch = KillSwitch::at("upload");
        assert!(switch.check("list").is_ok());
        assert_eq!(switch.check("upload"), Err(Killed("upload".into())));
    }

    #[tokio::test]
    async fn runs_what_happens_meanwhile_and_goes_on() {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = hits.clone();
        let switch = KillSwitch::meanwhile(
            "verify",
            std::sync::Arc::new(move || {
                let seen = seen.clone();
                Box::pin(async move {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })
            }),
        );
        assert!(switch.reached("list").await.is_ok());
        assert!(switch.reached("verify").await.is_ok());
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
