//! The native half of `elect-node`: a thin layer over the `elect` crate.
//!
//! Everything a person calls lives in `index.js`; this module gives it four
//! things and no election logic of its own:
//!
//! * [`NativeElection`]: an [`elect::Election`], built (and so checked) at
//!   once; `tryObtain` and `status` run on the calling thread (they never
//!   wait for a ticket);
//! * [`NativeElection::wait`]: a blocking [`elect::Election::obtain_cancellable`]
//!   on a std thread of its own (never libuv's threadpool), whose result
//!   reaches JavaScript through a threadsafe function, which also keeps the
//!   event loop alive while the wait is pending;
//! * [`NativeWait`]: the [`elect::Cancel`] of one such wait;
//! * [`NativeTicket`]: an [`elect::Ticket`], released by `release()` or when
//!   the garbage collector drops it.

use std::sync::Mutex;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{
    ErrorStrategy, ThreadSafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode,
};
use napi::{Env, JsFunction, JsUnknown, NapiValue};
use napi_derive::napi;

/// A short, stable name for each kind of library error, set as the JS
/// error's `code`. The message stays the library's own.
fn code(e: &elect::Error) -> &'static str {
    match e {
        elect::Error::InvalidName { .. } => "ELECT_INVALID_NAME",
        elect::Error::InvalidTickets { .. } => "ELECT_INVALID_TICKETS",
        elect::Error::NoRunDir(_) => "ELECT_NO_RUN_DIR",
        elect::Error::Unsafe { .. } => "ELECT_UNSAFE",
        elect::Error::TicketMismatch { .. } => "ELECT_TICKET_MISMATCH",
        elect::Error::TokenDamaged { .. } => "ELECT_TOKEN_DAMAGED",
        elect::Error::TokenExhausted { .. } => "ELECT_TOKEN_EXHAUSTED",
        elect::Error::Io { .. } => "ELECT_IO",
        elect::Error::Cancelled => "ELECT_CANCELLED",
        _ => "ELECT_ERROR",
    }
}

/// The JS `Error` for a library error: its message, and `code`.
fn js_error_value(env: &Env, e: &elect::Error) -> JsUnknown {
    let err = napi::Error::new(code(e), e.to_string());
    // SAFETY: `env` is the live environment of the current call.
    unsafe {
        let value = JsError::from(err).into_value(env.raw());
        JsUnknown::from_raw_unchecked(env.raw(), value)
    }
}

/// A library error as a napi error that throws the JS `Error` above.
fn throw(env: &Env, e: &elect::Error) -> napi::Error {
    napi::Error::from(js_error_value(env, e))
}

/// One resource of one run directory, with its number of tickets and label.
#[napi]
pub struct NativeElection {
    inner: elect::Election,
}

#[napi]
impl NativeElection {
    /// Builds the election; a bad name, number of tickets or run directory
    /// throws the library's error here, before anything waits.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        name: String,
        tickets: f64,
        dir: Option<String>,
        label: Option<String>,
    ) -> Result<Self> {
        // The JS layer passes only integers; anything beyond u32 is out of
        // range all the same, and the library says so in its own words.
        let tickets = if (0.0..=f64::from(u32::MAX)).contains(&tickets) {
            tickets as u32
        } else {
            return Err(throw(
                &env,
                &elect::Error::InvalidTickets {
                    tickets: if tickets > 0.0 { tickets as u64 } else { 0 },
                    max: elect::MAX_TICKETS,
                },
            ));
        };
        let mut builder = elect::Election::builder(&name).tickets(tickets);
        if let Some(dir) = dir {
            builder = builder.dir(dir);
        }
        if let Some(label) = label {
            builder = builder.label(label);
        }
        let inner = builder.build().map_err(|e| throw(&env, &e))?;
        Ok(NativeElection { inner })
    }

    /// The resource name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// The number of tickets.
    #[napi(getter)]
    pub fn tickets(&self) -> u32 {
        self.inner.tickets()
    }

    /// The run directory, absolute.
    #[napi(getter)]
    pub fn dir(&self) -> String {
        self.inner.dir().to_string_lossy().into_owned()
    }

    /// A free ticket, or null; never waits for one (at most
    /// `elect::TRY_PATIENCE` for bookkeeping locks).
    #[napi]
    pub fn try_obtain(&self, env: Env) -> Result<Option<NativeTicket>> {
        match self.inner.try_obtain() {
            Ok(t) => Ok(t.map(NativeTicket::new)),
            Err(e) => Err(throw(&env, &e)),
        }
    }

    /// The status of this resource (the contract's JSON for one resource).
    #[napi]
    pub fn status(&self, env: Env) -> Result<serde_json::Value> {
        let st = self.inner.status().map_err(|e| throw(&env, &e))?;
        serde_json::to_value(st).map_err(|e| napi::Error::from_reason(e.to_string()))
    }

    /// Starts waiting for a ticket on a thread of its own, up to
    /// `timeout_ms` (null: as long as it takes). `callback(err, ticket)` runs
    /// once on the JS thread: a ticket, null on timeout, or an error
    /// (`ELECT_CANCELLED` once the returned wait was cancelled).
    #[napi]
    pub fn wait(&self, timeout_ms: Option<f64>, callback: JsFunction) -> Result<NativeWait> {
        type Outcome = std::result::Result<Option<elect::Ticket>, elect::Error>;
        let tsfn: ThreadsafeFunction<Outcome, ErrorStrategy::Fatal> = callback
            .create_threadsafe_function(0, |ctx: ThreadSafeCallContext<Outcome>| {
                let env = ctx.env;
                let (err, ticket) = match ctx.value {
                    Ok(t) => (env.get_null()?.into_unknown(), t),
                    Err(e) => (js_error_value(&env, &e), None),
                };
                let ticket = match ticket {
                    // SAFETY: env is the live environment of this call.
                    Some(t) => unsafe {
                        let raw = NativeTicket::to_napi_value(env.raw(), NativeTicket::new(t))?;
                        JsUnknown::from_raw_unchecked(env.raw(), raw)
                    },
                    None => env.get_null()?.into_unknown(),
                };
                Ok(vec![err, ticket])
            })?;
        // A timeout too long to be a Duration is no timeout at all, as in
        // the library (from_secs_f64 would panic and abort the process).
        let timeout =
            timeout_ms.and_then(|ms| Duration::try_from_secs_f64(ms.max(0.0) / 1000.0).ok());
        let cancel = elect::Cancel::new();
        let (election, c2) = (self.inner.clone(), cancel.clone());
        std::thread::Builder::new()
            .name(format!("elect-wait-{}", election.name()))
            .spawn(move || {
                let outcome = election.obtain_cancellable(&c2, timeout);
                // If JavaScript is gone (the environment is closing), the
                // outcome is dropped here, and a ticket with it: released.
                tsfn.call(outcome, ThreadsafeFunctionCallMode::NonBlocking);
                // Dropping tsfn lets the event loop end, if nothing else
                // keeps it alive.
            })
            .map_err(|e| napi::Error::from_reason(format!("cannot start a wait thread: {e}")))?;
        Ok(NativeWait { cancel })
    }
}

/// The cancel of one pending wait.
#[napi]
pub struct NativeWait {
    cancel: elect::Cancel,
}

#[napi]
impl NativeWait {
    /// Ends the wait at once; its callback gets `ELECT_CANCELLED`, or the
    /// ticket if it had already come.
    #[napi]
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

/// An obtained ticket. Released by `release()` (idempotent) or when the
/// garbage collector collects it; the kernel releases it if the process
/// dies.
#[napi]
pub struct NativeTicket {
    inner: Mutex<Option<elect::Ticket>>,
    name: String,
    slot: u32,
    token: u64,
}

impl NativeTicket {
    fn new(t: elect::Ticket) -> Self {
        NativeTicket {
            name: t.name().to_string(),
            slot: t.slot(),
            token: t.token(),
            inner: Mutex::new(Some(t)),
        }
    }

    fn ticket(&self) -> std::sync::MutexGuard<'_, Option<elect::Ticket>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[napi]
impl NativeTicket {
    /// The resource name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// The slot held, 0-based.
    #[napi(getter)]
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The fencing token, as a number: exact up to 2^53. Tokens start
    /// near the time in microseconds (about 1.8e15 in 2026), which stays
    /// below 2^53 until the 23rd century; `tokenBigInt` is exact always.
    #[napi(getter)]
    pub fn token(&self) -> f64 {
        self.token as f64
    }

    /// The fencing token as a BigInt, exact whatever its size.
    #[napi(getter)]
    pub fn token_big_int(&self) -> BigInt {
        BigInt::from(self.token)
    }

    /// Whether the ticket still truly holds its slot: false after release
    /// and once the slot file or a directory above it was removed or
    /// replaced. One `stat`.
    #[napi]
    pub fn is_held(&self) -> bool {
        self.ticket().as_ref().is_some_and(elect::Ticket::is_held)
    }

    /// The record this holder wrote into its slot file, or null once
    /// released.
    #[napi]
    pub fn record(&self) -> Result<Option<serde_json::Value>> {
        match self.ticket().as_ref() {
            Some(t) => serde_json::to_value(t.record())
                .map(Some)
                .map_err(|e| napi::Error::from_reason(e.to_string())),
            None => Ok(None),
        }
    }

    /// Releases the slot now; does nothing the second time.
    #[napi]
    pub fn release(&self) {
        let t = self.ticket().take();
        drop(t);
    }
}

/// The status of a run directory (`dir`, else the default one): every
/// resource in it, or the one named. The contract's JSON.
#[napi]
pub fn status(env: Env, dir: Option<String>, name: Option<String>) -> Result<serde_json::Value> {
    let st = elect::status(dir.as_deref().map(std::path::Path::new), name.as_deref())
        .map_err(|e| throw(&env, &e))?;
    serde_json::to_value(st).map_err(|e| napi::Error::from_reason(e.to_string()))
}

/// The most tickets a resource may have.
#[napi]
pub const MAX_TICKETS: u32 = elect::MAX_TICKETS;
