//! The error type: which DPDK call failed, its errno (`rte_errno` or the negative return
//! value), and DPDK's text for it (`rte_strerror`).

use std::borrow::Cow;
use std::ffi::CStr;
use std::fmt;

use netml_dpdk_sys as sys;

/// Linux errno values used by this crate's own checks (DPDK reports the same codes).
pub mod errno {
    /// No such file or directory (no such port, pool, device).
    pub const ENOENT: i32 = 2;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// File exists (name already taken).
    pub const EEXIST: i32 = 17;
    /// No such device.
    pub const ENODEV: i32 = 19;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// File name too long.
    pub const ENAMETOOLONG: i32 = 36;
    /// Operation not supported.
    pub const ENOTSUP: i32 = 95;
    /// No buffer space available (mempool empty).
    pub const ENOBUFS: i32 = 105;
    /// Operation already in progress / already done.
    pub const EALREADY: i32 = 114;
}

/// A failed DPDK operation.
///
/// Carries the operation (a DPDK function name, with the port or object it was called
/// on), the errno (`rte_errno` after the call, or the negated return value for ethdev
/// calls, which return `-errno`), and the message. `Display` is one line:
/// `rte_eth_dev_configure(port 1): Invalid argument (errno 22)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    op: Cow<'static, str>,
    errno: i32,
    message: String,
}

impl Error {
    /// An error for `op` with errno `errno`, described by `rte_strerror(errno)`.
    pub fn from_errno(op: impl Into<Cow<'static, str>>, errno: i32) -> Self {
        Error {
            op: op.into(),
            errno,
            message: strerror(errno),
        }
    }

    /// An error for `op` from the calling thread's current `rte_errno`.
    pub(crate) fn last(op: impl Into<Cow<'static, str>>) -> Self {
        // SAFETY: reads the calling thread's rte_errno (a thread-local int); no preconditions.
        let errno = unsafe { sys::netml_shim_errno() };
        Self::from_errno(op, errno)
    }

    /// An error with an explanation of this crate's own (not DPDK's text).
    pub(crate) fn with_message(
        op: impl Into<Cow<'static, str>>,
        errno: i32,
        message: impl Into<String>,
    ) -> Self {
        Error {
            op: op.into(),
            errno,
            message: message.into(),
        }
    }

    /// Checks an ethdev-style return value: negative means `-errno`.
    pub(crate) fn check(ret: i32, op: impl FnOnce() -> String) -> Result<i32> {
        if ret < 0 {
            Err(Self::from_errno(op(), -ret))
        } else {
            Ok(ret)
        }
    }

    /// The failed operation, e.g. `rte_eth_dev_start(port 0)`.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The errno value (a Linux errno, or one of DPDK's `E_RTE_*` codes).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The description (`rte_strerror` text, or this crate's explanation).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (errno {})", self.op, self.message, self.errno)
    }
}

impl std::error::Error for Error {}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `rte_strerror(errno)` as an owned string.
pub(crate) fn strerror(errno: i32) -> String {
    if errno == 0 {
        return "unknown error (rte_errno not set)".to_string();
    }
    // SAFETY: rte_strerror accepts any int and returns a NUL-terminated string: a static one
    // for DPDK's codes, otherwise one formatted into a per-thread buffer, which we copy
    // before this thread can call it again.
    unsafe {
        let p = sys::rte_strerror(errno);
        if p.is_null() {
            format!("error {errno}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}
