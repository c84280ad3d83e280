//! The simulator's kernel calls through the host build of `infer_ops.cu`
//! (`netml_infer::gpu::host`): the real kernel source, run on the CPU.

use std::collections::HashMap;
use std::ffi::c_void;

use netml_infer::gpu::{self, KArg, KernelCall};

use super::Sim;

impl Sim<'_> {
    /// One kernel call through the host build: the arena and the weights it reads packed
    /// into device bytes (f32 or f16), the f32 buffers passed as they are.
    pub(super) fn kernel_host(&mut self, k: &KernelCall) {
        let dtype = self.gp.dtype;
        let mut arena = dtype.pack(&self.arena);
        let mut weights: HashMap<usize, Vec<u8>> = HashMap::new();
        for a in &k.args {
            if let KArg::Weight(w) = a {
                weights.insert(w.0, dtype.pack(&self.plan.weight(*w).data));
            }
        }
        let arena_p = arena.as_mut_ptr();
        let wptrs: HashMap<usize, *mut u8> = weights
            .iter_mut()
            .map(|(i, v)| (*i, v.as_mut_ptr()))
            .collect();
        let (scratch, input, output) = (
            self.scratch.as_mut_ptr(),
            self.input.as_mut_ptr(),
            self.output.as_mut_ptr(),
        );
        // SAFETY: every pointer is into a buffer laid out as on the device (arena bytes,
        // packed weights, f32 scratch/input/output) and alive for the call; GpuPlan::check
        // bounded the offsets.
        unsafe {
            gpu::host::launch(k, |a| match a {
                KArg::Arena(o) => arena_p.add(o) as *mut c_void,
                KArg::Weight(w) => wptrs[&w.0] as *mut c_void,
                KArg::Scratch => scratch as *mut c_void,
                KArg::Input => input as *mut c_void,
                KArg::Output => output as *mut c_void,
                other => panic!("{other:?} is not a pointer"),
            })
        }
        .unwrap_or_else(|e| panic!("{e}"));
        self.arena = dtype.unpack(&arena);
    }
}
