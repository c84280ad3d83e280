//! The Environment Abstraction Layer: initialisation (once per process), cleanup, lcores,
//! time.

use std::ffi::{c_char, c_int, CString};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use netml_dpdk_sys as sys;

use crate::error::{errno, Error, Result};

/// What this process has done with the EAL so far.
enum State {
    /// `rte_eal_init` has not succeeded yet.
    Uninit,
    /// Initialised; the weak reference is alive while any handle (an [`Eal`], a mempool,
    /// port or ring) is.
    Running(Weak<EalShared>),
    /// `rte_eal_cleanup` has run; DPDK cannot be initialised again in this process.
    Finished,
}

static STATE: Mutex<State> = Mutex::new(State::Uninit);

fn state() -> MutexGuard<'static, State> {
    // A panic while holding this lock leaves the state consistent (it is only assigned),
    // so a poisoned lock is still usable.
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shared by every object that needs the EAL alive. When the last one goes,
/// `rte_eal_cleanup` runs.
pub(crate) struct EalShared {
    /// Set by [`Eal::cleanup`], which runs `rte_eal_cleanup` itself to report its result.
    cleaned: bool,
}

impl Drop for EalShared {
    fn drop(&mut self) {
        if !self.cleaned {
            // SAFETY: this is the last reference to the EAL: every mempool, port and ring
            // handle holds one, and a mempool that still had mbufs out when dropped leaked its
            // reference on purpose, so no DPDK object made through this crate is alive.
            unsafe { sys::rte_eal_cleanup() };
        }
        *state() = State::Finished;
    }
}

/// A reference that keeps the EAL initialised (held by mempools, ports and rings).
pub(crate) type EalRef = Arc<EalShared>;

/// The running EAL, or an error if it is not initialised (or already cleaned up).
pub(crate) fn current(op: &'static str) -> Result<EalRef> {
    let st = state();
    let found = match &*st {
        State::Running(weak) => weak.upgrade(),
        _ => None,
    };
    drop(st);
    found.ok_or_else(|| {
        Error::with_message(
            op,
            errno::ENODEV,
            "the DPDK EAL is not initialised (call netml_dpdk::Eal::init first)",
        )
    })
}

/// Whether the EAL is initialised and not cleaned up.
pub fn is_initialized() -> bool {
    matches!(&*state(), State::Running(w) if w.strong_count() > 0)
}

/// The initialised DPDK Environment Abstraction Layer.
///
/// `rte_eal_init` runs once per process: a second [`Eal::init`] returns an error (errno
/// `EALREADY`), even after cleanup. The EAL is cleaned up (`rte_eal_cleanup`) when this
/// handle and every mempool, port and ring made since have been dropped, or by
/// [`Eal::cleanup`]. Tests and long-running programs typically keep one `Eal` in a
/// `static OnceLock` and never clean up.
pub struct Eal {
    shared: EalRef,
    parsed: usize,
}

impl Eal {
    /// Initialises DPDK with `args`, passed to `rte_eal_init` unchanged: the program name
    /// first, then EAL options, e.g.
    /// `["netml", "-l", "0", "--file-prefix", "netml-1", "--no-huge", "-m", "256",
    /// "--vdev", "net_ring0"]`.
    ///
    /// The argument strings are leaked on purpose: the EAL may keep pointers into `argv`.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        let mut st = state();
        match &*st {
            State::Uninit => {}
            State::Running(_) => {
                return Err(Error::with_message(
                    "rte_eal_init",
                    errno::EALREADY,
                    "the EAL is already initialised in this process (rte_eal_init runs once per process)",
                ))
            }
            State::Finished => {
                return Err(Error::with_message(
                    "rte_eal_init",
                    errno::EALREADY,
                    "the EAL was cleaned up; DPDK cannot be initialised twice in one process",
                ))
            }
        }
        if args.is_empty() {
            return Err(Error::with_message(
                "rte_eal_init",
                errno::EINVAL,
                "no arguments: the first must be the program name",
            ));
        }
        let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 1);
        for a in args {
            let c = CString::new(a.as_ref()).map_err(|_| {
                Error::with_message(
                    "rte_eal_init",
                    errno::EINVAL,
                    format!("argument {:?} contains a NUL byte", a.as_ref()),
                )
            })?;
            argv.push(c.into_raw());
        }
        argv.push(std::ptr::null_mut());
        let argv: &'static mut [*mut c_char] = Box::leak(argv.into_boxed_slice());
        let argc = c_int::try_from(args.len()).map_err(|_| {
            Error::with_message("rte_eal_init", errno::EINVAL, "too many arguments")
        })?;
        // SAFETY: argv holds argc valid NUL-terminated strings plus a terminating null, all
        // leaked, so they outlive the EAL whatever it keeps; the STATE lock is held, so no
        // other thread of this crate calls rte_eal_init concurrently, and State::Uninit means
        // it has not succeeded in this process before (if it failed before, DPDK itself
        // decides whether a retry is allowed and reports EALREADY otherwise).
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(Error::last("rte_eal_init"));
        }
        let shared = Arc::new(EalShared { cleaned: false });
        *st = State::Running(Arc::downgrade(&shared));
        Ok(Eal {
            shared,
            parsed: ret as usize,
        })
    }

    /// How many arguments `rte_eal_init` parsed (including the program name); arguments
    /// after those (following a `--`) are the application's.
    pub fn parsed_args(&self) -> usize {
        self.parsed
    }

    /// Cleans up the EAL now (`rte_eal_cleanup`) and reports its result.
    ///
    /// If mempools, ports or rings made through this crate are still alive (or a mempool
    /// was dropped with mbufs outstanding and therefore leaked), the EAL must stay up: this
    /// returns an `EBUSY` error and cleanup happens when the last of them is dropped.
    pub fn cleanup(self) -> Result<()> {
        match Arc::try_unwrap(self.shared) {
            Ok(mut shared) => {
                // SAFETY: this was the last reference (see EalShared::drop).
                let ret = unsafe { sys::rte_eal_cleanup() };
                shared.cleaned = true;
                drop(shared); // marks the state Finished
                Error::check(ret, || "rte_eal_cleanup".to_string()).map(|_| ())
            }
            Err(shared) => {
                let others = Arc::strong_count(&shared) - 1;
                drop(shared);
                Err(Error::with_message(
                    "rte_eal_cleanup",
                    errno::EBUSY,
                    format!("{others} mempool/port/ring handle(s) still use the EAL; cleanup deferred until they are dropped"),
                ))
            }
        }
    }

    /// Number of lcores the EAL was given (`-l` / `-c`).
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: the EAL is initialised (we hold a reference).
        unsafe { sys::rte_lcore_count() }
    }

    /// The main lcore's id (the thread that called [`Eal::init`] runs as it).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: the EAL is initialised (we hold a reference).
        unsafe { sys::rte_get_main_lcore() }
    }

    /// The DPDK version the binding was built against, e.g. `"22.11.11"`.
    pub fn version() -> &'static str {
        sys::DPDK_VERSION
    }
}

impl std::fmt::Debug for Eal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eal")
            .field("parsed_args", &self.parsed)
            .finish()
    }
}

/// The calling thread's lcore id, or `None` on a thread the EAL did not create or adopt
/// (any thread but the one that called [`Eal::init`], unless registered with DPDK).
pub fn lcore_id() -> Option<u32> {
    // SAFETY: reads thread-local variables; valid on any thread, before or after init.
    let (id, any) = unsafe { (sys::netml_shim_lcore_id(), sys::netml_shim_lcore_id_any) };
    (id != any).then_some(id)
}

/// Adopts the calling thread as a DPDK lcore (`rte_thread_register`), so that it gets an
/// lcore id and with it the per-lcore mempool caches; returns the id. Poll-mode workers
/// started with `std::thread` call this first. Idempotent on an already adopted thread.
///
/// While the process serves packet capture ([`crate::Pdump`]) it declines with `ENOTSUP`:
/// DPDK refuses secondary processes once a thread has been adopted this way.
pub fn register_thread() -> Result<u32> {
    if let Some(id) = lcore_id() {
        return Ok(id);
    }
    if crate::pdump::serving_captures() {
        return Err(Error::with_message(
            "rte_thread_register",
            errno::ENOTSUP,
            "not done while serving packet capture (DPDK then refuses secondary processes)",
        ));
    }
    // SAFETY: registers the calling thread with an initialised EAL; DPDK checks both.
    let rc = unsafe { sys::rte_thread_register() };
    if rc != 0 {
        return Err(Error::last("rte_thread_register"));
    }
    lcore_id().ok_or_else(|| Error::from_errno("rte_thread_register", errno::EINVAL))
}

/// The calling thread's NUMA socket, or `None` if unknown (a non-EAL thread).
pub fn socket_id() -> Option<u32> {
    // SAFETY: reads a thread-local variable; valid on any thread.
    let s = unsafe { sys::rte_socket_id() };
    (s as i32 != sys::SOCKET_ID_ANY).then_some(s)
}

/// TSC ticks per second as measured by the EAL at init (`rte_get_tsc_hz`); 0 before
/// [`Eal::init`].
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a global the EAL sets during init (0 before).
    unsafe { sys::rte_get_tsc_hz() }
}

/// Reads the time stamp counter (`rte_rdtsc`: `rdtsc`, no serialisation).
#[inline]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc is available on every x86_64 CPU and has no memory effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: rte_rdtsc reads a counter register; no preconditions.
        unsafe { sys::netml_shim_rdtsc() }
    }
}
