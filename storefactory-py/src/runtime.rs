//! The one tokio runtime of the module, and the two ways Python waits on it: blocking (the
//! GIL released, Ctrl-C honoured) and `await` (an asyncio future resolved from the runtime).
//!
//! The runtime is built on first use, not at import, so `import storefactory` stays cheap
//! and a program that only renders blueprints never starts a thread.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::BoundObject;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

/// How often a blocking wait takes the GIL back to look for a pending signal (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The module's runtime, built on first use.
pub fn runtime() -> PyResult<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("storefactory")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the async runtime: {e}")))
}

/// Runs `future` to completion with the GIL released, so other Python threads run
/// meanwhile. A signal handler that raises (Ctrl-C's `KeyboardInterrupt`) ends the wait
/// with its exception and drops the future, which cancels the work at its next `.await`.
pub fn block_on<T, F>(py: Python<'_>, future: F) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send,
    T: Send,
{
    let runtime = runtime()?;
    py.detach(|| {
        runtime.block_on(async {
            let mut future = std::pin::pin!(future);
            let mut ticks = tokio::time::interval(SIGNAL_CHECK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    result = &mut future => return result,
                    _ = ticks.tick() => Python::attach(|py| py.check_signals())?,
                }
            }
        })
    })
}

/// An asyncio future, of the running event loop, that `future` (run on the module's
/// runtime) resolves. Cancelling the asyncio future cancels the work.
pub fn awaitable<'py, T, F>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let result = event_loop.call_method0("create_future")?;
    let (loop_handle, result_handle) = (event_loop.unbind(), result.clone().unbind());
    let task = runtime()?.spawn(async move {
        let outcome = future.await;
        Python::attach(|py| {
            let (ok, value) = match outcome.and_then(|value| {
                value
                    .into_pyobject(py)
                    .map(|v| v.into_any().unbind())
                    .map_err(Into::into)
            }) {
                Ok(value) => (true, value),
                Err(error) => (false, error.into_value(py).into_any()),
            };
            let resolve = match wrap_pyfunction!(resolve, py) {
                Ok(resolve) => resolve,
                Err(error) => return error.write_unraisable(py, None),
            };
            // Fails only when the loop is closed: nobody is left to tell.
            let _ = loop_handle.call_method1(
                py,
                "call_soon_threadsafe",
                (resolve, result_handle, ok, value),
            );
        });
    });
    result.call_method1(
        "add_done_callback",
        (Cancel {
            task: task.abort_handle(),
        },),
    )?;
    Ok(result)
}

/// Sets an asyncio future's result or exception, unless it is already done (cancelled).
/// Runs on the event loop's thread.
#[pyfunction]
fn resolve(future: &Bound<'_, PyAny>, ok: bool, value: Bound<'_, PyAny>) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        future.call_method1("set_result", (value,))?;
    } else {
        future.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

/// Done-callback of an asyncio future: stops the work behind it (a no-op once it finished).
#[pyclass(frozen)]
struct Cancel {
    task: tokio::task::AbortHandle,
}

#[pymethods]
impl Cancel {
    fn __call__(&self, _future: &Bound<'_, PyAny>) {
        self.task.abort();
    }
}
