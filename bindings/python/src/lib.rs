//! `elect._elect`: the Python binding of the elect library.
//!
//! Thin by design: every decision (who may hold a slot, the line, tokens,
//! the agreement on N, fork safety) is the library's. This module only
//! turns its types into Python objects, its errors into Python exceptions,
//! and makes its blocking waits behave as Python expects of a blocking call:
//! the GIL is released while waiting and Ctrl-C ends the wait.
//!
//! How a wait ends on Ctrl-C: Python runs signal handlers only on the main
//! thread, between bytecodes, so a wait that sleeps in the kernel on the
//! calling thread would not see KeyboardInterrupt until a ticket came. The
//! wait therefore runs on a thread of its own
//! ([`elect::Election::obtain_cancellable`]); the calling thread waits for
//! its result in slices of [`SLICE`] with the GIL released and asks Python
//! for pending signals between slices. On an exception it cancels the wait
//! (the waiter leaves the line at once), joins the thread, drops any ticket
//! that came meanwhile (which releases it) and raises. No signal handler is
//! installed and nothing global is kept.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyType};

/// How long the calling thread sleeps, GIL released, between two looks at
/// pending signals while a wait runs: the most a Ctrl-C waits to be seen.
const SLICE: Duration = Duration::from_millis(50);

/// Locks a mutex, ignoring poisoning: nothing here can leave state torn.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An exception of the `elect._errors` module (`elect.Error` and its
/// subclasses), with `msg`.
fn raise(py: Python<'_>, class: &str, msg: String) -> PyErr {
    let cls = py
        .import("elect._errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match cls {
        Ok(cls) => PyErr::from_type(cls, msg),
        // The package is not importable (the module loaded alone): still
        // an exception that says what went wrong.
        Err(_) => PyRuntimeError::new_err(msg),
    }
}

/// The library's error as a Python exception carrying the library's own
/// message (which names the bad value or path and says what to do).
fn to_py(py: Python<'_>, e: elect::Error) -> PyErr {
    let class = match &e {
        e if e.is_usage() => "InvalidArgument",
        elect::Error::TicketMismatch { .. } => "TicketMismatch",
        elect::Error::Unsafe { .. } => "UnsafeDirectory",
        _ => "Error",
    };
    raise(py, class, e.to_string())
}

/// A timeout given in seconds (a float, or None for none) as the library's
/// `Option<Duration>`; negative and NaN are refused, infinity and values too
/// large to be a duration are no timeout.
fn timeout_arg(py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(raise(
            py,
            "InvalidArgument",
            format!(
                "invalid timeout {t}: it must be a number of seconds, 0 or more, or None to wait as long as it takes"
            ),
        )),
        Some(t) => Ok(Duration::try_from_secs_f64(t).ok()),
    }
}

/// The exception for a wait that ran out of time.
fn timed_out(py: Python<'_>, name: &str, timeout: Duration) -> PyErr {
    raise(
        py,
        "Timeout",
        format!(
            "no ticket of {name:?} came within {} s; wait longer (timeout=None waits as long as it takes) or use try_obtain()",
            timeout.as_secs_f64()
        ),
    )
}

/// One resource with N tickets. Cheap; holds nothing open.
#[pyclass(module = "elect._elect", subclass, frozen)]
struct Election {
    inner: elect::Election,
    /// The label asked for, to pickle the election with.
    label: Option<String>,
}

#[pymethods]
impl Election {
    #[new]
    #[pyo3(signature = (name, tickets = None, dir = None, label = None))]
    fn new(
        py: Python<'_>,
        name: &str,
        tickets: Option<&Bound<'_, PyAny>>,
        dir: Option<PathBuf>,
        label: Option<String>,
    ) -> PyResult<Self> {
        let tickets = match tickets {
            None => 1,
            Some(t) => tickets_arg(py, t)?,
        };
        let mut b = elect::Election::builder(name).tickets(tickets);
        if let Some(dir) = dir {
            b = b.dir(dir);
        }
        if let Some(label) = &label {
            b = b.label(label);
        }
        Ok(Election {
            inner: b.build().map_err(|e| to_py(py, e))?,
            label,
        })
    }

    /// The resource name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The number of tickets (N).
    #[getter]
    fn tickets(&self) -> u32 {
        self.inner.tickets()
    }

    /// The run directory, absolute.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.inner.dir().to_path_buf()
    }

    /// Takes a free ticket if there is one and nobody waits before us;
    /// None otherwise. Never waits for a ticket.
    fn try_obtain(&self, py: Python<'_>) -> PyResult<Option<Ticket>> {
        let r = py.detach(|| self.inner.try_obtain());
        Ok(r.map_err(|e| to_py(py, e))?.map(Ticket::new))
    }

    /// Waits for a ticket, in line, up to `timeout` seconds (None: as long
    /// as it takes); raises elect.Timeout (a TimeoutError) if none came.
    /// Ctrl-C ends the wait with KeyboardInterrupt and leaves the line.
    #[pyo3(signature = (timeout = None))]
    fn obtain(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Ticket> {
        let limit = timeout_arg(py, timeout)?;
        if limit == Some(Duration::ZERO) {
            return match self.try_obtain(py)? {
                Some(t) => Ok(t),
                None => Err(timed_out(py, self.inner.name(), Duration::ZERO)),
            };
        }
        // A ticket that is free now (and nobody waits for) is taken on this
        // thread, sparing the start of a waiting thread and the hand-back of
        // its result. Not
        // under a timeout shorter than the try's own patience with others'
        // bookkeeping locks, which it could then overrun.
        if limit.is_none_or(|l| l >= elect::TRY_PATIENCE)
            && let Some(t) = self.try_obtain(py)?
        {
            return Ok(t);
        }
        let cancel = elect::Cancel::new();
        let (tx, rx) = mpsc::sync_channel(1);
        // A Receiver may not be shared with the GIL-free closure; a mutex
        // that only this thread takes makes it so.
        let rx = Mutex::new(rx);
        let (election, c) = (self.inner.clone(), cancel.clone());
        let thread = std::thread::Builder::new()
            .name("elect-wait".into())
            .spawn(move || {
                let _ = tx.send(election.obtain_cancellable(&c, limit));
            })
            .map_err(|e| PyOSError::new_err(format!("cannot start a thread to wait on: {e}")))?;
        let result = loop {
            match py.detach(|| lock(&rx).recv_timeout(SLICE)) {
                Ok(r) => break r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(interrupted) = py.check_signals() {
                        cancel.cancel();
                        // A ticket that came anyway is dropped: released.
                        py.detach(|| {
                            let _ = thread.join();
                            drop(lock(&rx).try_recv());
                        });
                        return Err(interrupted);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(PyRuntimeError::new_err(
                        "elect: the waiting thread ended without an answer (a bug in elect; please report it)",
                    ));
                }
            }
        };
        py.detach(|| {
            let _ = thread.join();
        });
        match result {
            Ok(Some(t)) => Ok(Ticket::new(t)),
            Ok(None) => Err(timed_out(py, self.inner.name(), limit.unwrap_or_default())),
            Err(e) => Err(to_py(py, e)),
        }
    }

    /// Starts a wait on a thread of its own for asyncio (see
    /// `elect.Election.obtain_async`): its `fileno()` becomes readable when
    /// it has ended; `result()` then gives the ticket or raises.
    #[pyo3(signature = (timeout = None))]
    fn _start_wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Wait> {
        let limit = timeout_arg(py, timeout)?;
        Wait::start(self.inner.clone(), limit)
    }

    /// Starts a campaign (see `elect.Election.campaign`).
    #[pyo3(signature = (on_obtain, cleanup, requeue = false, check_every = 0.25))]
    fn _campaign(
        &self,
        py: Python<'_>,
        on_obtain: Py<PyAny>,
        cleanup: Py<PyAny>,
        requeue: bool,
        check_every: f64,
    ) -> PyResult<Campaign> {
        let every = match timeout_arg(py, Some(check_every))? {
            Some(d) => d,
            None => Duration::MAX,
        };
        Ok(Campaign::start(
            &self.inner,
            on_obtain,
            cleanup,
            requeue,
            every,
        ))
    }

    /// This resource's status as the contract's JSON shows one resource:
    /// JSON text (the package turns it into a dict).
    fn _status_json(&self, py: Python<'_>) -> PyResult<String> {
        let st = py
            .detach(|| self.inner.status())
            .map_err(|e| to_py(py, e))?;
        serde_json::to_string(&st).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Pickles as the arguments that make it again, with the run directory
    /// resolved, for multiprocessing's spawn and forkserver start methods.
    #[allow(clippy::type_complexity)]
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> (Bound<'py, PyType>, (String, u32, PathBuf, Option<String>)) {
        let me = slf.get();
        (
            slf.get_type(),
            (
                me.inner.name().to_string(),
                me.inner.tickets(),
                me.inner.dir().to_path_buf(),
                me.label.clone(),
            ),
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "Election({:?}, tickets={}, dir={:?})",
            self.inner.name(),
            self.inner.tickets(),
            self.inner.dir().display().to_string()
        )
    }
}

/// The number of tickets from any Python value: an int from 1 to 4096,
/// else an exception naming the value.
fn tickets_arg(py: Python<'_>, t: &Bound<'_, PyAny>) -> PyResult<u32> {
    if t.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err("tickets must be an int, not a bool"));
    }
    let n: i128 = t.extract().map_err(|_| {
        let ty = t
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        PyTypeError::new_err(format!("tickets must be an int, not {ty}"))
    })?;
    match u32::try_from(n) {
        // The library's own check and message for 0 and > 4096.
        Ok(n) => Ok(n),
        Err(_) => Err(raise(
            py,
            "InvalidArgument",
            format!(
                "invalid number of tickets {n}: it must be from 1 to {}",
                elect::MAX_TICKETS
            ),
        )),
    }
}

/// The status of the run directory `dir` (default as for an Election), of
/// one resource or all: the contract's JSON text.
#[pyfunction]
#[pyo3(signature = (dir = None, name = None))]
fn _status_json(py: Python<'_>, dir: Option<PathBuf>, name: Option<String>) -> PyResult<String> {
    let st = py
        .detach(|| elect::status(dir.as_deref(), name.as_deref()))
        .map_err(|e| to_py(py, e))?;
    serde_json::to_string(&st).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// An obtained ticket: this process holds one slot of the resource until
/// `release()`, the end of its `with` block, or its collection.
#[pyclass(module = "elect._elect", frozen)]
struct Ticket {
    name: String,
    slot: u32,
    token: u64,
    path: PathBuf,
    held: Mutex<Option<elect::Ticket>>,
}

impl Ticket {
    fn new(t: elect::Ticket) -> Self {
        Ticket {
            name: t.name().to_string(),
            slot: t.slot(),
            token: t.token(),
            path: t.path().to_path_buf(),
            held: Mutex::new(Some(t)),
        }
    }
}

#[pymethods]
impl Ticket {
    /// The resource name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The slot held, 0-based.
    #[getter]
    fn slot(&self) -> u32 {
        self.slot
    }

    /// The fencing token: larger than that of every earlier acquisition of
    /// any slot of the resource.
    #[getter]
    fn token(&self) -> u64 {
        self.token
    }

    /// The slot file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Whether this ticket still truly holds its slot: false after
    /// release, and once the slot file or a directory above it was removed
    /// or replaced.
    #[getter]
    fn is_held(&self) -> bool {
        lock(&self.held)
            .as_ref()
            .is_some_and(elect::Ticket::is_held)
    }

    /// Releases the slot; does nothing the second time. In a fork child
    /// that inherited the ticket it only closes the child's descriptors:
    /// the parent keeps the slot.
    fn release(&self) {
        let t = lock(&self.held).take();
        drop(t);
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.release();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<elect.Ticket {:?} slot={} token={}{}>",
            self.name,
            self.slot,
            self.token,
            if lock(&self.held).is_some() {
                ""
            } else {
                " released"
            }
        )
    }
}

/// A wait for asyncio, running on a thread of its own. The thread never
/// touches Python: it stores its result and writes a byte to a pipe whose
/// read end the event loop watches.
#[pyclass(module = "elect._elect", frozen)]
struct Wait {
    cancel: elect::Cancel,
    result: Arc<Mutex<Option<elect::Result<Option<elect::Ticket>>>>>,
    ready: std::io::PipeReader,
    thread: Mutex<Option<JoinHandle<()>>>,
    name: String,
    limit: Option<Duration>,
}

impl Wait {
    fn start(election: elect::Election, limit: Option<Duration>) -> PyResult<Self> {
        let (ready, mut done) = std::io::pipe()
            .map_err(|e| PyOSError::new_err(format!("cannot make a pipe to wait on: {e}")))?;
        let cancel = elect::Cancel::new();
        let result = Arc::new(Mutex::new(None));
        let (c, r) = (cancel.clone(), Arc::clone(&result));
        let name = election.name().to_string();
        let thread = std::thread::Builder::new()
            .name("elect-wait".into())
            .spawn(move || {
                let got = election.obtain_cancellable(&c, limit);
                *lock(&r) = Some(got);
                use std::io::Write;
                let _ = done.write_all(b"!");
            })
            .map_err(|e| PyOSError::new_err(format!("cannot start a thread to wait on: {e}")))?;
        Ok(Wait {
            cancel,
            result,
            ready,
            thread: Mutex::new(Some(thread)),
            name,
            limit,
        })
    }

    fn join(&self, py: Python<'_>) {
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            py.detach(|| {
                let _ = t.join();
            });
        }
    }
}

#[pymethods]
impl Wait {
    /// The pipe's read end: readable once the wait has ended.
    fn fileno(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.ready.as_raw_fd()
    }

    /// The ticket, once the wait has ended; raises what the wait raised
    /// (elect.Timeout on timeout).
    fn result(&self, py: Python<'_>) -> PyResult<Ticket> {
        self.join(py);
        let got = lock(&self.result).take();
        match got {
            Some(Ok(Some(t))) => Ok(Ticket::new(t)),
            Some(Ok(None)) => Err(timed_out(py, &self.name, self.limit.unwrap_or_default())),
            Some(Err(e)) => Err(to_py(py, e)),
            None => Err(PyRuntimeError::new_err(
                "elect: the wait has not ended yet, or its result was taken",
            )),
        }
    }

    /// Ends the wait (it leaves the line at once) and releases a ticket it
    /// may have obtained meanwhile. Returns when its thread has ended.
    fn cancel(&self, py: Python<'_>) {
        self.cancel.cancel();
        self.join(py);
        let got = lock(&self.result).take();
        drop(got);
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        // Never leave a wait running with nobody to take its ticket.
        self.cancel.cancel();
    }
}

/// The ticket a campaign hands to `on_obtain`: the campaign owns the slot;
/// `release()` ends ownership (the cleanup then runs).
#[pyclass(module = "elect._elect", frozen)]
struct CampaignTicket {
    /// A handle on the campaign's ticket: it tells the name, slot and token
    /// even after ownership ended, and releasing it twice does nothing.
    inner: elect::CampaignTicket,
}

#[pymethods]
impl CampaignTicket {
    /// The resource name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The slot held, 0-based.
    #[getter]
    fn slot(&self) -> u32 {
        self.inner.slot()
    }

    /// The fencing token of this acquisition.
    #[getter]
    fn token(&self) -> u64 {
        self.inner.token()
    }

    /// Whether the campaign still truly holds the slot.
    #[getter]
    fn is_held(&self) -> bool {
        self.inner.is_held()
    }

    /// Ends ownership: the slot is released at once, then the campaign's
    /// cleanup runs with "released". Does nothing once ownership ended.
    fn release(&self, py: Python<'_>) {
        let t = self.inner.clone();
        py.detach(|| t.release());
    }

    fn __repr__(&self) -> String {
        format!(
            "<elect.CampaignTicket {:?} slot={} token={}>",
            self.name(),
            self.slot(),
            self.token()
        )
    }
}

/// A campaign running on a thread of its own.
#[pyclass(module = "elect._elect", frozen, weakref)]
struct Campaign {
    inner: Mutex<Option<elect::BlockingCampaign>>,
    /// The campaign's thread, once it has run a callback: it must not wait
    /// for itself.
    thread: Arc<Mutex<Option<ThreadId>>>,
    /// The process that started it: a fork child has no campaign thread.
    pid: u32,
}

impl Campaign {
    fn start(
        election: &elect::Election,
        on_obtain: Py<PyAny>,
        cleanup: Py<PyAny>,
        requeue: bool,
        every: Duration,
    ) -> Self {
        let thread = Arc::new(Mutex::new(None));
        let (t1, t2) = (Arc::clone(&thread), Arc::clone(&thread));
        let inner = election
            .campaign()
            .requeue(requeue)
            .check_every(every)
            .run_blocking(
                move |ticket| {
                    *lock(&t1) = Some(std::thread::current().id());
                    Python::attach(|py| {
                        let pt = CampaignTicket {
                            inner: ticket.clone(),
                        };
                        let called = Py::new(py, pt).and_then(|pt| on_obtain.call1(py, (pt,)));
                        if let Err(e) = called {
                            // Owned code that failed cannot go on owning.
                            e.display(py);
                            py.detach(|| ticket.release());
                        }
                    });
                },
                move |ending| {
                    *lock(&t2) = Some(std::thread::current().id());
                    let ending = match ending {
                        elect::Ending::Released => "released",
                        elect::Ending::Lost => "lost",
                        elect::Ending::Resigned => "resigned",
                        _ => "released",
                    };
                    Python::attach(|py| {
                        if let Err(e) = cleanup.call1(py, (ending,)) {
                            e.display(py);
                        }
                    });
                },
            );
        Campaign {
            inner: Mutex::new(Some(inner)),
            thread,
            pid: std::process::id(),
        }
    }

    fn check_here(&self) -> PyResult<()> {
        if self.pid != std::process::id() {
            return Err(PyRuntimeError::new_err(format!(
                "this campaign was started in process {} and its thread did not survive fork: start campaigns in the workers, after fork",
                self.pid
            )));
        }
        if *lock(&self.thread) == Some(std::thread::current().id()) {
            return Err(PyRuntimeError::new_err(
                "a campaign cannot wait for itself from its own callback: call ticket.release() in on_obtain, or resign from another thread",
            ));
        }
        Ok(())
    }
}

#[pymethods]
impl Campaign {
    /// Stops competing: ends the wait, or ends ownership and runs the
    /// cleanup with "resigned". Returns when the campaign has ended.
    fn resign(&self, py: Python<'_>) -> PyResult<()> {
        self.check_here()?;
        let c = lock(&self.inner).take();
        match c {
            Some(c) => py.detach(|| c.resign()).map_err(|e| to_py(py, e)),
            None => Ok(()),
        }
    }

    /// Waits until the campaign ends by itself (ownership released or lost
    /// without requeue), up to `timeout` seconds; returns whether it ended.
    #[pyo3(signature = (timeout = None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.check_here()?;
        let limit = timeout_arg(py, timeout)?;
        let start = std::time::Instant::now();
        loop {
            if self.is_finished() {
                let c = lock(&self.inner).take();
                if let Some(c) = c {
                    py.detach(|| c.join()).map_err(|e| to_py(py, e))?;
                }
                return Ok(true);
            }
            let left = limit.map(|l| l.saturating_sub(start.elapsed()));
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(false);
            }
            // The campaign has no end event to wait on here (the library's
            // join cannot time out): look every SLICE, as a wait checks for
            // Ctrl-C, rather than waking 200 times a second.
            let nap = left.map_or(SLICE, |l| l.min(SLICE));
            py.detach(|| std::thread::sleep(nap));
            py.check_signals()?;
        }
    }

    /// Whether the campaign has ended.
    #[getter]
    fn is_finished(&self) -> bool {
        lock(&self.inner)
            .as_ref()
            .is_none_or(elect::BlockingCampaign::is_finished)
    }
}

impl Drop for Campaign {
    fn drop(&mut self) {
        let Some(c) = lock(&self.inner).take() else {
            return;
        };
        if self.pid != std::process::id() {
            // A fork child: the thread is the parent's; there is nothing
            // here to stop or join.
            std::mem::forget(c);
            return;
        }
        if *lock(&self.thread) == Some(std::thread::current().id()) {
            // Dropped from its own callback: resign from elsewhere.
            std::thread::spawn(move || drop(c));
            return;
        }
        // Dropping resigns and joins the thread, which may need the GIL
        // for the cleanup: wait with it released.
        Python::attach(|py| py.detach(move || drop(c)));
    }
}

#[pymodule]
fn _elect(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Election>()?;
    m.add_class::<Ticket>()?;
    m.add_class::<CampaignTicket>()?;
    m.add_class::<Campaign>()?;
    m.add_class::<Wait>()?;
    m.add_function(wrap_pyfunction!(_status_json, m)?)?;
    m.add("MAX_TICKETS", elect::MAX_TICKETS)?;
    Ok(())
}
