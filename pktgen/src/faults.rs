//! Seeded fault injection: the fate of every original fragment, decided per image.

use crate::fragmenter::{Damage, CORRUPT_END, CORRUPT_FIRST};
use crate::rng::Rng;
use crate::{bail, Result};

/// Fault probabilities (all per original fragment unless stated).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Probability that a fragment is dropped.
    pub loss: f64,
    /// Probability that a fragment's frame is cut short.
    pub truncate: f64,
    /// Probability that one bit of a fragment's header is flipped.
    pub corrupt: f64,
    /// Probability that a delivered fragment is sent twice.
    pub dup: f64,
    /// Frames are shuffled within consecutive windows of this many frames (0 or 1: off).
    pub reorder: usize,
    /// Probability (per image) that the image withholds its last fragment(s).
    pub incomplete: f64,
}

/// Most trailing fragments an incomplete image withholds.
pub const MAX_WITHHELD: u16 = 4;

impl Faults {
    /// Checks ranges. Loss, truncation and corruption are drawn as one categorical choice
    /// so that each happens with exactly its own probability; hence their sum is at most 1.
    pub fn validate(&self) -> Result<()> {
        for (name, p) in [
            ("--loss", self.loss),
            ("--truncate", self.truncate),
            ("--corrupt", self.corrupt),
            ("--dup", self.dup),
            ("--incomplete", self.incomplete),
        ] {
            if !(0.0..=1.0).contains(&p) {
                bail!("{name} must be a probability in [0, 1], got {p}");
            }
        }
        if self.loss + self.truncate + self.corrupt > 1.0 + 1e-12 {
            bail!("--loss + --truncate + --corrupt must not exceed 1 (one fate per fragment)");
        }
        Ok(())
    }

    /// Whether any fault is enabled.
    pub fn any(&self) -> bool {
        self.loss > 0.0
            || self.truncate > 0.0
            || self.corrupt > 0.0
            || self.dup > 0.0
            || self.reorder > 1
            || self.incomplete > 0.0
    }

    /// Decides the fate of each of an image's `count` fragments. `frame_len(i)` is the
    /// length of fragment i's frame and `headers` the Ethernet+IP+UDP length, which bound
    /// where a truncation may cut.
    pub fn plan(
        &self,
        count: u16,
        headers: usize,
        frame_len: impl Fn(u16) -> usize,
        rng: &mut Rng,
    ) -> Vec<Fate> {
        let withheld = if rng.chance(self.incomplete) {
            1 + rng.below(MAX_WITHHELD.min(count) as u64) as u16
        } else {
            0
        };
        (0..count)
            .map(|i| {
                if i >= count - withheld {
                    return Fate::Withheld;
                }
                let u = rng.unit();
                if u < self.loss {
                    Fate::Lost
                } else if u < self.loss + self.truncate {
                    // Cut at least one byte into the fragment header and at least one
                    // byte short of the end.
                    let len = frame_len(i);
                    let keep = headers + 1 + rng.below((len - headers - 1) as u64) as usize;
                    Fate::Damaged(Damage::Truncate { keep })
                } else if u < self.loss + self.truncate + self.corrupt {
                    let span = (CORRUPT_END - CORRUPT_FIRST) as u64 * 8;
                    let b = rng.below(span) as usize;
                    Fate::Damaged(Damage::Corrupt {
                        byte: CORRUPT_FIRST + b / 8,
                        bit: (b % 8) as u8,
                    })
                } else {
                    Fate::Delivered {
                        dup: rng.chance(self.dup),
                    }
                }
            })
            .collect()
    }
}

/// What happens to one original fragment. Exactly one per fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Sent intact, and sent a second time (intact) if `dup`.
    Delivered {
        /// Whether an extra copy follows later.
        dup: bool,
    },
    /// Not sent.
    Lost,
    /// Sent truncated or corrupted.
    Damaged(Damage),
    /// Not sent because the image is made incomplete on purpose.
    Withheld,
}

/// Exact counts of what was injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Images planned.
    pub images: u64,
    /// Images whose every fragment is delivered intact (none withheld).
    pub images_intact: u64,
    /// Original fragments.
    pub fragments: u64,
    /// Fragments delivered intact (not counting duplicates).
    pub delivered: u64,
    /// Fragments dropped.
    pub lost: u64,
    /// Fragments truncated.
    pub truncated: u64,
    /// Fragments with a flipped header bit.
    pub corrupted: u64,
    /// Extra intact copies.
    pub duplicated: u64,
    /// Fragments withheld by incomplete images.
    pub withheld: u64,
}

impl Tally {
    /// Counts one image's fates; returns whether the image is intact.
    pub fn add(&mut self, fates: &[Fate]) -> bool {
        self.images += 1;
        self.fragments += fates.len() as u64;
        let mut intact = true;
        for f in fates {
            match f {
                Fate::Delivered { dup } => {
                    self.delivered += 1;
                    self.duplicated += *dup as u64;
                }
                Fate::Lost => self.lost += 1,
                Fate::Damaged(Damage::Truncate { .. }) => self.truncated += 1,
                Fate::Damaged(_) => self.corrupted += 1,
                Fate::Withheld => self.withheld += 1,
            }
            intact &= matches!(f, Fate::Delivered { .. });
        }
        self.images_intact += intact as u64;
        intact
    }

    /// Frames these fates put on the wire (damaged ones and duplicates included).
    pub fn frames(&self) -> u64 {
        self.delivered + self.duplicated + self.truncated + self.corrupted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(Faults::default().validate().is_ok());
        let f = Faults {
            loss: 0.6,
            corrupt: 0.5,
            ..Faults::default()
        };
        assert!(f.validate().is_err());
        let f = Faults {
            dup: 1.5,
            ..Faults::default()
        };
        assert!(f.validate().is_err());
    }

    #[test]
    fn rates_and_exclusivity() {
        let f = Faults {
            loss: 0.1,
            truncate: 0.05,
            corrupt: 0.05,
            dup: 0.1,
            incomplete: 0.2,
            reorder: 0,
        };
        let mut rng = Rng::new(5, 1);
        let mut t = Tally::default();
        let mut incomplete = 0;
        for _ in 0..2000 {
            let fates = f.plan(20, 42, |i| if i == 0 { 1000 } else { 900 }, &mut rng);
            for fate in &fates {
                if let Fate::Damaged(Damage::Truncate { keep }) = fate {
                    assert!((43..1000).contains(keep));
                }
            }
            let w = fates.iter().filter(|f| **f == Fate::Withheld).count();
            assert!(w <= MAX_WITHHELD as usize);
            // Withheld fragments are always the trailing ones.
            assert!(fates[20 - w..].iter().all(|f| *f == Fate::Withheld));
            incomplete += (w > 0) as u32;
            t.add(&fates);
        }
        assert_eq!(
            t.fragments,
            t.delivered + t.lost + t.truncated + t.corrupted + t.withheld
        );
        let n = t.fragments as f64;
        assert!((t.lost as f64 / n - 0.1).abs() < 0.01);
        assert!((t.truncated as f64 / n - 0.05).abs() < 0.01);
        assert!((t.duplicated as f64 / t.delivered as f64 - 0.1).abs() < 0.01);
        assert!((350..450).contains(&incomplete), "{incomplete}");
    }
}
