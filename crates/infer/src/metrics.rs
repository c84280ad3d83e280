//! Agreement metrics between two engines' outputs.

/// Relative L2 error `‖a − b‖₂ / ‖b‖₂` (b is the reference), in f64.
/// Returns `f64::INFINITY` if any value is NaN or the lengths differ.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|v| v.is_nan()) {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let d = x as f64 - y as f64;
        num += d * d;
        den += y as f64 * y as f64;
    }
    if den == 0.0 {
        return if num == 0.0 { 0.0 } else { f64::INFINITY };
    }
    (num / den).sqrt()
}

/// Index of the largest value (first one on ties; NaN never wins).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() {
            best = i;
        }
    }
    best
}

/// Number of rows (of `row` values each) whose argmax agrees, and the
/// number of rows.
pub fn top1_agreement(a: &[f32], b: &[f32], row: usize) -> (usize, usize) {
    let rows = a.len().min(b.len()) / row.max(1);
    let agree = (0..rows)
        .filter(|&r| argmax(&a[r * row..(r + 1) * row]) == argmax(&b[r * row..(r + 1) * row]))
        .count();
    (agree, rows)
}
