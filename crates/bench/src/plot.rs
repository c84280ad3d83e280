//! A small dependency-free SVG chart writer for the `netml bench` commands.
//!
//! Two shapes cover every benchmark figure: [`line_chart`] (a measured quantity against a
//! swept parameter) and [`bar_chart`] (grouped bars: one group per category, one bar per
//! series). Both draw axes with "nice" ticks (1, 2, 5 x 10^k on linear axes, decades on
//! log axes), a legend, and a distinct colour per series. Non-finite values (and values
//! <= 0 on a log axis) are skipped, so the output never holds `NaN` or `inf`; user text is
//! XML-escaped.

use std::fmt::Write as _;

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 500.0;
/// Plot area margins: the left one holds tick labels and the y label, the right one the
/// legend.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 64.0;

/// Tableau-10: distinguishable colours, also in greyscale print for the first few.
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// An SVG line chart: one polyline with point markers per series, `(x, y)` points drawn
/// in the order given.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let valid = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, p)| p.iter().copied().filter(valid))
        .collect();
    let xa = Axis::fit(points.iter().map(|p| p.0), false, false);
    let ya = Axis::fit(points.iter().map(|p| p.1), log_y, false);
    let mut s = Canvas::new(title);
    s.axes(&xa, &ya, x_label, y_label);
    for (i, (_, pts)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let xy: Vec<(f64, f64)> = pts
            .iter()
            .copied()
            .filter(valid)
            .map(|(x, y)| (s.px(&xa, x), s.py(&ya, y)))
            .collect();
        if xy.len() > 1 {
            let path: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                s.out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
        }
        for (x, y) in xy {
            let _ = writeln!(
                s.out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
            );
        }
    }
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    s.legend(&names);
    s.finish()
}

/// An SVG grouped bar chart: one group per x category (`groups[i].0`), inside it one bar per
/// `(series, value)`. A series keeps its colour across groups; a group may lack a series.
pub fn bar_chart(
    title: &str,
    y_label: &str,
    log_y: bool,
    groups: &[(String, Vec<(String, f64)>)],
) -> String {
    let valid = |v: f64| v.is_finite() && (!log_y || v > 0.0);
    let mut names: Vec<&str> = Vec::new();
    for (_, bars) in groups {
        for (n, _) in bars {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let values = groups
        .iter()
        .flat_map(|(_, b)| b.iter().map(|b| b.1))
        .filter(|&v| valid(v));
    let ya = Axis::fit(values, log_y, true);
    // Categories sit at 0.5, 1.5, ...: a linear axis over [0, groups] without ticks.
    let xa = Axis {
        lo: 0.0,
        hi: groups.len().max(1) as f64,
        log: false,
        step: 0.0,
    };
    let mut s = Canvas::new(title);
    s.axes(&xa, &ya, "", y_label);
    let slot = (WIDTH - LEFT - RIGHT) / groups.len().max(1) as f64;
    let bar_w = slot * 0.8 / names.len().max(1) as f64;
    let base = s.py(&ya, ya.bottom_value());
    let label_attrs = category_label_attrs(groups.iter().map(|g| g.0.as_str()), slot);
    for (g, (label, bars)) in groups.iter().enumerate() {
        let x0 = LEFT + slot * g as f64 + slot * 0.1;
        for (name, v) in bars.iter().filter(|b| valid(b.1)) {
            let k = names.iter().position(|n| n == name).unwrap_or(0);
            let top = s.py(&ya, *v);
            let (y, h) = (top.min(base), (base - top).abs());
            let _ = writeln!(
                s.out,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                x0 + bar_w * k as f64,
                bar_w.max(1.0) - 1.0,
                PALETTE[k % PALETTE.len()],
                esc(name),
                fmt_value(*v)
            );
        }
        let (cx, cy) = (LEFT + slot * (g as f64 + 0.5), HEIGHT - BOTTOM + 16.0);
        let _ = writeln!(
            s.out,
            r#"<text x="{cx:.1}" y="{cy:.1}" {}>{}</text>"#,
            label_attrs.replace("CX", &format!("{cx:.1} {cy:.1}")),
            esc(label)
        );
    }
    s.legend(&names);
    s.finish()
}

/// Text attributes for category labels `slot` pixels apart: centred at 12px when the
/// longest fits, smaller (down to 8px) when not, and turned 30 degrees beyond that. `CX`
/// stands for the label's anchor point in the rotation.
fn category_label_attrs<'a>(labels: impl Iterator<Item = &'a str>, slot: f64) -> String {
    // About 0.6 em per character in a sans-serif font.
    let chars = labels.map(|l| l.chars().count()).max().unwrap_or(0).max(1) as f64;
    let size = (slot * 0.95 / (chars * 0.6)).min(12.0);
    if size >= 8.0 {
        format!(r#"text-anchor="middle" font-size="{size:.1}""#)
    } else {
        r#"text-anchor="end" font-size="10" transform="rotate(-30 CX)""#.to_string()
    }
}

/// One axis: its value range, and how ticks are placed.
#[derive(Debug, Clone, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    /// Linear: the tick spacing (0: no ticks). Log: decades between ticks.
    step: f64,
}

impl Axis {
    /// The axis covering `values` (already filtered to finite ones, positive on log axes),
    /// extended to whole ticks; `zero` (bars) pulls a linear axis down (or up) to 0 and keeps
    /// the smallest value above the bottom of a log axis.
    fn fit(values: impl Iterator<Item = f64>, log: bool, zero: bool) -> Axis {
        let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
        if log {
            if lo > hi {
                (lo, hi) = (1.0, 10.0);
            }
            let mut a = lo.log10().floor();
            if zero && lo.log10() - a < 1e-9 {
                // Bars start at the axis bottom: one sitting on it would have no height.
                a -= 1.0;
            }
            let mut b = hi.log10().ceil();
            if b <= a {
                b = a + 1.0;
            }
            let step = ((b - a) / 8.0).ceil().max(1.0);
            b = a + ((b - a) / step).ceil() * step;
            return Axis {
                lo: a,
                hi: b,
                log: true,
                step,
            };
        }
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        if zero {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
            // One distinct value: centre it (with `zero`, it can only be 0 here).
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo, hi) = if zero {
                (0.0, pad)
            } else {
                (lo - pad, hi + pad)
            };
        }
        let step = nice_step((hi - lo) / 5.0);
        Axis {
            lo: (lo / step).floor() * step,
            hi: (hi / step).ceil() * step,
            log: false,
            step,
        }
    }

    /// Where `v` falls on the axis, 0 (start) to 1 (end), clamped.
    fn frac(&self, v: f64) -> f64 {
        let t = if self.log { v.log10() } else { v };
        let f = (t - self.lo) / (self.hi - self.lo);
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// The value at the bottom of the axis (where bars start).
    fn bottom_value(&self) -> f64 {
        if self.log {
            10f64.powf(self.lo)
        } else {
            0f64.clamp(self.lo, self.hi)
        }
    }

    /// Tick values and their labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        if self.step <= 0.0 {
            return Vec::new();
        }
        let n = ((self.hi - self.lo) / self.step).round() as i64;
        (0..=n)
            .map(|i| {
                let t = self.lo + self.step * i as f64;
                if self.log {
                    let k = t.round() as i32;
                    (10f64.powi(k), decade_label(k))
                } else {
                    (t, linear_label(t, self.step))
                }
            })
            .collect()
    }
}

/// The smallest of 1, 2, 5 x 10^k that is at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

/// A linear tick label with as many decimals as the step needs (`-0` printed as `0`).
fn linear_label(v: f64, step: f64) -> String {
    if !(1e-4..1e6).contains(&step) {
        return format!("{:e}", (v / step).round() * step);
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let s = format!("{:.*}", decimals, v);
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// `10^k` written plainly in the range 0.001 .. 100000, as `1e{k}` beyond.
fn decade_label(k: i32) -> String {
    match k {
        0..=5 => format!("{}", 10u64.pow(k as u32)),
        -3..=-1 => format!("{:.*}", (-k) as usize, 10f64.powi(k)),
        _ => format!("1e{k}"),
    }
}

/// A value for a tooltip: 4 significant digits.
fn fmt_value(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        let decimals = (3.0 - v.abs().max(1e-3).log10().floor()).clamp(0.0, 6.0) as usize;
        format!("{:.*}", decimals, v)
    }
}

/// Escapes text for SVG element content and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// The SVG document under construction.
struct Canvas {
    out: String,
}

impl Canvas {
    fn new(title: &str) -> Canvas {
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            out,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="26" text-anchor="middle" font-size="16">{}</text>"#,
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
            esc(title)
        );
        Canvas { out }
    }

    fn px(&self, a: &Axis, v: f64) -> f64 {
        LEFT + a.frac(v) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, a: &Axis, v: f64) -> f64 {
        HEIGHT - BOTTOM - a.frac(v) * (HEIGHT - TOP - BOTTOM)
    }

    /// The frame, grid lines, tick labels and axis labels.
    fn axes(&mut self, xa: &Axis, ya: &Axis, x_label: &str, y_label: &str) {
        let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
        for (v, label) in ya.ticks() {
            let y = self.py(ya, v);
            let _ = writeln!(
                self.out,
                r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 - 6.0,
                y + 4.0,
                esc(&label)
            );
        }
        for (v, label) in xa.ticks() {
            let x = self.px(xa, v);
            let _ = writeln!(
                self.out,
                r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                y0 + 5.0,
                y0 + 18.0,
                esc(&label)
            );
        }
        let _ = writeln!(
            self.out,
            r##"<path d="M{x0:.1},{y1:.1} V{y0:.1} H{x1:.1}" fill="none" stroke="#333"/>"##
        );
        let _ = writeln!(
            self.out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            HEIGHT - 20.0,
            esc(x_label)
        );
        let (cx, cy) = (18.0, (y0 + y1) / 2.0);
        let _ = writeln!(
            self.out,
            r#"<text x="{cx:.1}" y="{cy:.1}" text-anchor="middle" transform="rotate(-90 {cx:.1} {cy:.1})">{}</text>"#,
            esc(y_label)
        );
    }

    /// One coloured swatch and name per series, right of the plot area.
    fn legend(&mut self, names: &[&str]) {
        let x = WIDTH - RIGHT + 16.0;
        for (i, name) in names.iter().enumerate() {
            let y = TOP + 8.0 + 20.0 * i as f64;
            let _ = writeln!(
                self.out,
                r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
                y - 10.0,
                PALETTE[i % PALETTE.len()],
                x + 18.0,
                esc(name)
            );
        }
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

#[cfg(test)]
mod tests;
