//! DPDK telemetry commands of the application's own (`rte_telemetry_register_cmd`), answered
//! by Rust closures that fill a dictionary (`rte_tel_data`).
//!
//! DPDK's telemetry thread serves `/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2` (read it
//! with `dpdk-telemetry.py -f <file-prefix>`) unless the EAL was given `--no-telemetry`.
//! A command's handler runs on that thread, whenever a client asks: it must not wait for
//! anything the data path holds, only read what has already been published.
//!
//! DPDK 22.11's callback has no user-data pointer, so one C trampoline serves every command
//! and finds the closure by the command's name in a registry of this module.
//!
//! ```no_run
//! use netml_dpdk::telemetry;
//! telemetry::register_command("/app/hello", "Says hello", |_params, reply| {
//!     let mut d = reply.dict()?;
//!     d.string("greeting", "hello")?;
//!     d.u64("answer", 42)
//! })?;
//! # Ok::<(), netml_dpdk::Error>(())
//! ```

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use netml_dpdk_sys as sys;

use crate::error::{errno, Error, Result};

/// A command's handler: the parameters after the comma (`/cmd,params`; empty without one)
/// and the reply to fill.
pub type Handler = dyn Fn(&str, Reply<'_>) -> Result<()> + Send + Sync;

/// Handlers by command name; entries are never removed (DPDK cannot unregister a command).
static HANDLERS: Mutex<Option<HashMap<String, Arc<Handler>>>> = Mutex::new(None);

/// Registers `command` (e.g. `/netml/stats`: a `/`, then letters, digits, `_` and `/`) with
/// its `help` text (shown by `/help,<command>`). DPDK allows each name once per process and
/// 64 application commands in all; a name registered here before gets the new handler.
pub fn register_command<F>(command: &str, help: &str, handler: F) -> Result<()>
where
    F: Fn(&str, Reply<'_>) -> Result<()> + Send + Sync + 'static,
{
    let op = "rte_telemetry_register_cmd";
    let valid_name = command.starts_with('/')
        && command
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/');
    if !valid_name {
        return Err(Error::with_message(
            op,
            errno::EINVAL,
            format!("command {command:?}: a '/' then letters, digits, '_' and '/' only"),
        ));
    }
    let c_command = c_string(op, command)?;
    let c_help = c_string(op, help)?;
    let mut handlers = HANDLERS.lock().unwrap_or_else(PoisonError::into_inner);
    let first = handlers
        .get_or_insert_with(HashMap::new)
        .insert(command.to_string(), Arc::new(handler))
        .is_none();
    if first {
        // SAFETY: both strings are valid NUL-terminated C strings (DPDK copies them); the
        // trampoline is a valid callback for the whole process lifetime.
        let rc = unsafe {
            sys::rte_telemetry_register_cmd(c_command.as_ptr(), Some(trampoline), c_help.as_ptr())
        };
        if rc < 0 {
            if let Some(h) = handlers.as_mut() {
                h.remove(command);
            }
            return Err(Error::from_errno(format!("{op}({command})"), -rc));
        }
    }
    Ok(())
}

fn c_string(op: &'static str, s: &str) -> Result<CString> {
    CString::new(s)
        .map_err(|_| Error::with_message(op, errno::EINVAL, format!("{s:?} contains a NUL byte")))
}

/// The one callback DPDK calls for every command registered here.
unsafe extern "C" fn trampoline(
    cmd: *const c_char,
    params: *const c_char,
    info: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: DPDK passes the command it matched (NUL-terminated) and the parameters or
    // null; both stay valid for the duration of the call.
    let text = |p: *const c_char| unsafe { (!p.is_null()).then(|| CStr::from_ptr(p)) };
    let Some(command) = text(cmd).and_then(|c| c.to_str().ok()) else {
        return -errno::EINVAL;
    };
    let params = text(params).and_then(|c| c.to_str().ok()).unwrap_or("");
    let handler = HANDLERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|h| h.get(command).cloned());
    let Some(handler) = handler else {
        return -errno::ENOENT;
    };
    let reply = Reply {
        data: info,
        _callback: PhantomData,
    };
    // A panic must not unwind into DPDK's thread: the client gets an error reply instead.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(params, reply))) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => -e.errno().max(1),
        Err(_) => -errno::EINVAL,
    }
}

/// The answer to one request, valid during the handler's call.
pub struct Reply<'a> {
    data: *mut sys::rte_tel_data,
    _callback: PhantomData<&'a mut sys::rte_tel_data>,
}

impl<'a> Reply<'a> {
    /// Answers with a dictionary (at most 256 entries).
    pub fn dict(self) -> Result<Dict<'a>> {
        // SAFETY: `data` is the reply DPDK passed to the callback, alive during it.
        check("rte_tel_data_start_dict", unsafe {
            sys::rte_tel_data_start_dict(self.data)
        })?;
        Ok(Dict {
            data: self.data,
            _reply: PhantomData,
        })
    }

    /// Answers with one string (at most 8 KiB).
    pub fn string(self, s: &str) -> Result<()> {
        let s = c_string("rte_tel_data_string", s)?;
        // SAFETY: as in `dict`; DPDK copies the string.
        check("rte_tel_data_string", unsafe {
            sys::rte_tel_data_string(self.data, s.as_ptr())
        })
    }
}

/// A dictionary being filled: names are letters, digits, `_` and `/` (DPDK refuses others),
/// at most 127 bytes; string values at most 127 bytes.
pub struct Dict<'a> {
    data: *mut sys::rte_tel_data,
    _reply: PhantomData<&'a mut sys::rte_tel_data>,
}

impl Dict<'_> {
    /// Adds an unsigned integer.
    pub fn u64(&mut self, name: &str, value: u64) -> Result<()> {
        let op = "rte_tel_data_add_dict_u64";
        let name = c_string(op, name)?;
        // SAFETY: `data` is a started dict alive for this borrow; DPDK copies the name.
        check(op, unsafe {
            sys::rte_tel_data_add_dict_u64(self.data, name.as_ptr(), value)
        })
    }

    /// Adds a string.
    pub fn string(&mut self, name: &str, value: &str) -> Result<()> {
        let op = "rte_tel_data_add_dict_string";
        let (name, value) = (c_string(op, name)?, c_string(op, value)?);
        // SAFETY: as in `u64`; DPDK copies both strings.
        check(op, unsafe {
            sys::rte_tel_data_add_dict_string(self.data, name.as_ptr(), value.as_ptr())
        })
    }

    /// Adds every `(name, value)` pair.
    pub fn u64s(&mut self, fields: &[(&str, u64)]) -> Result<()> {
        fields.iter().try_for_each(|&(k, v)| self.u64(k, v))
    }

    /// Adds a dictionary under `name`, filled by `fill`. DPDK 22.11 encodes one level of
    /// nesting: `fill` may add numbers and strings only (adding a dictionary fails).
    pub fn dict(
        &mut self,
        name: &str,
        fill: impl FnOnce(&mut Dict<'_>) -> Result<()>,
    ) -> Result<()> {
        let op = "rte_tel_data_add_dict_container";
        let name = c_string(op, name)?;
        // SAFETY: no preconditions; null on allocation failure.
        let inner = unsafe { sys::rte_tel_data_alloc() };
        if inner.is_null() {
            return Err(Error::from_errno("rte_tel_data_alloc", errno::ENOMEM));
        }
        let filled = {
            // SAFETY: `inner` is a fresh container owned here until handed to DPDK.
            check("rte_tel_data_start_dict", unsafe {
                sys::rte_tel_data_start_dict(inner)
            })
            .and_then(|()| {
                fill(&mut Dict {
                    data: inner,
                    _reply: PhantomData,
                })
            })
        };
        if let Err(e) = filled {
            // SAFETY: not handed to DPDK.
            unsafe { sys::rte_tel_data_free(inner) };
            return Err(e);
        }
        // SAFETY: `self.data` is a started dict; with keep = 0 DPDK frees `inner` with the
        // reply once it is stored (return value 0 or E2BIG).
        let rc =
            unsafe { sys::rte_tel_data_add_dict_container(self.data, name.as_ptr(), inner, 0) };
        if rc < 0 {
            // SAFETY: not stored by DPDK (negative: refused before storing it).
            unsafe { sys::rte_tel_data_free(inner) };
        }
        check(op, rc)
    }
}

/// "Truncated", returned positive by DPDK after the value was stored.
const E2BIG: i32 = 7;

/// DPDK's telemetry calls return 0, a negative errno, or `E2BIG` (positive) when a name or
/// string was truncated: all but success are errors here.
fn check(op: &'static str, rc: c_int) -> Result<()> {
    match rc {
        0 => Ok(()),
        E2BIG => Err(Error::with_message(
            op,
            E2BIG,
            "name or string longer than 127 bytes (truncated)",
        )),
        rc => Err(Error::from_errno(op, -rc)),
    }
}
