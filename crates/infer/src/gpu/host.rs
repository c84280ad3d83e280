//! The host build of `cuda-kernels/infer_ops.cu` (`host_ops.cpp`, compiled by `build.rs`):
//! the executor's kernels, unchanged, run on the CPU with the launch emulated (blocks in
//! sequence; threads in sequence, or as real threads for the warp-shuffle kernels). Tests run
//! whole [`GpuPlan`](super::GpuPlan)s through it; nothing in the executor uses it.

use std::ffi::{c_char, c_int, c_void, CString};

use super::calls::{KArg, KernelCall};
use crate::error::{Error, Result};

extern "C" {
    fn netml_infer_host_launch(
        name: *const c_char,
        kinds: *const c_char,
        grid: u32,
        block: u32,
        args: *mut *mut c_void,
    ) -> c_int;
}

/// Runs `call` on the CPU. `ptr` gives the host address for each pointer argument
/// ([`KArg::Arena`], [`KArg::Weight`], [`KArg::Scratch`], [`KArg::Input`],
/// [`KArg::Output`]; [`KArg::Null`] is null without asking). Fails if the entry does not
/// exist or its C++ parameter list differs from the call's argument kinds.
///
/// # Safety
/// Every address `ptr` returns must be valid for the reads and writes the kernel makes with
/// the call's arguments (host memory laid out as the device arena, weights and buffers).
pub unsafe fn launch(call: &KernelCall, mut ptr: impl FnMut(KArg) -> *mut c_void) -> Result<()> {
    let mut kinds = String::with_capacity(call.args.len());
    // One 8-byte slot per argument, as the device launch packs them (4-byte scalars in the
    // low bytes, which is where a little-endian `unsigned`/`int`/`float` read finds them).
    let mut slots: Vec<u64> = call
        .args
        .iter()
        .map(|&a| match a {
            KArg::U32(v) => {
                kinds.push('u');
                u64::from(v)
            }
            KArg::I32(v) => {
                kinds.push('i');
                u64::from(v as u32)
            }
            KArg::F32(v) => {
                kinds.push('f');
                u64::from(v.to_bits())
            }
            KArg::Null => {
                kinds.push('p');
                0
            }
            other => {
                kinds.push('p');
                ptr(other) as u64
            }
        })
        .collect();
    let mut params: Vec<*mut c_void> = slots
        .iter_mut()
        .map(|s| s as *mut u64 as *mut c_void)
        .collect();
    let name = CString::new(call.name.as_str())
        .map_err(|_| Error::Internal(format!("kernel name {:?}", call.name)))?;
    let kinds_c = CString::new(kinds.as_str()).expect("kind letters contain no NUL");
    // SAFETY: NUL-terminated strings and one parameter pointer per argument, alive for the
    // call; the caller vouches for the addresses inside the slots.
    let rc = netml_infer_host_launch(
        name.as_ptr(),
        kinds_c.as_ptr(),
        call.grid,
        call.block,
        params.as_mut_ptr(),
    );
    match rc {
        0 => Ok(()),
        -1 => Err(Error::Internal(format!(
            "no kernel {} in infer_ops.cu",
            call.name
        ))),
        -2 => Err(Error::Internal(format!(
            "{}: arguments '{kinds}' do not match the kernel's parameters",
            call.name
        ))),
        _ => Err(Error::Internal(format!(
            "{}: block {} is not a whole number of warps",
            call.name, call.block
        ))),
    }
}
