//! Waking the reconciler after a change, so that it need not wait for its
//! schedule.

use std::sync::Arc;

use crate::cloud::Functions;
use crate::workflows::reconcile::Target;

/// Tells the reconciler that a target changed (its desired state, or a node joined). In Lambda it invokes
/// the reconciler function asynchronously; locally it wakes the in-process
/// reconciler. It never fails the request: if the wake-up is lost, the reconcile
/// schedule picks the change up.
pub type Kick = Arc<dyn Fn(Target) -> BoxFuture + Send + Sync>;

/// The future a [`Kick`] returns.
pub type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The kick of the Lambda deployment: an asynchronous invoke of the reconciler
/// function with the target's event. A lost wake-up only delays the change until
/// the next scheduled run, so a failure is logged, not returned.
pub fn wake_by_invoke<F: Functions + 'static>(functions: Arc<F>, reconciler: String) -> Kick {
    Arc::new(move |target: Target| {
        let (functions, reconciler) = (functions.clone(), reconciler.clone());
        Box::pin(async move {
            let payload = target.event().to_string().into_bytes();
            if let Err(e) = functions.invoke_async(&reconciler, payload).await {
                tracing::warn!(error = %e, ?target, "could not wake the reconciler; the schedule will");
            }
        })
    })
}
