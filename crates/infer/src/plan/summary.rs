//! [`Plan::summary`]: a one-line-per-step listing for humans (the
//! `compare --plan` example, debugging fusion and arena placement).

use super::{Op, Plan, TensorId};

impl Plan {
    /// A human-readable listing of the plan, one line per step.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "plan '{}': batch {}, {}, {} steps, arena {} bytes, weights {} bytes",
            self.model,
            self.batch,
            self.precision,
            self.steps.len(),
            self.arena_bytes,
            self.weight_bytes()
        );
        let desc = |t: TensorId| {
            let t = self.tensor(t);
            format!("{:?}{:?}@{}", t.shape, t.layout, t.offset)
        };
        for (i, st) in self.steps.iter().enumerate() {
            let extra = match &st.op {
                Op::Conv(c) => format!(
                    " k{:?} s{:?} p{:?} g{} {:?}{}{}",
                    c.kernel,
                    c.stride,
                    c.pads,
                    c.groups,
                    c.act,
                    if c.bias.is_some() { " +bias" } else { "" },
                    if c.residual.is_some() {
                        " +residual"
                    } else {
                        ""
                    }
                ),
                Op::Gemm(g) => format!(" {}x{}x{} {:?}", g.m, g.n, g.k, g.act),
                Op::ScaleShift(x) => format!(" {:?}", x.act),
                Op::Add(x) => format!(" {:?}", x.act),
                Op::Pool(p) => format!(
                    " {:?} k{:?} s{:?} p{:?}",
                    p.kind, p.kernel, p.stride, p.pads
                ),
                _ => String::new(),
            };
            let ins: Vec<String> = st.inputs().into_iter().map(desc).collect();
            let _ = writeln!(
                s,
                "{i:4} {:<11} {} -> {}{extra}   [{}]",
                st.kind(),
                ins.join(", "),
                desc(st.output()),
                st.nodes.join(", ")
            );
        }
        s
    }
}
