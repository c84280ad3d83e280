//! The end-of-run summary.

use crate::faults::Tally;
use crate::progress::{bit_rate, packet_rate};
use std::fmt;

/// Exact counts of one send run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Images sent (planned, whatever their fate).
    pub images: u64,
    /// Images whose every fragment was delivered intact and none withheld.
    pub images_intact: u64,
    /// Original fragments of all images.
    pub fragments: u64,
    /// Original fragments delivered intact (duplicates not counted).
    pub delivered: u64,
    /// Frames written or sent (delivered, damaged and duplicate frames).
    pub frames_written: u64,
    /// Bytes handed to the output: frame bytes for pcap and interfaces, UDP payload bytes
    /// with `--udp`.
    pub bytes: u64,
    /// Fragments dropped.
    pub lost: u64,
    /// Fragments sent truncated.
    pub truncated: u64,
    /// Fragments sent with a flipped header bit.
    pub corrupted: u64,
    /// Extra intact copies sent.
    pub duplicated: u64,
    /// Fragments withheld by incomplete images.
    pub withheld: u64,
    /// Frames whose position changed in a reorder window.
    pub reordered: u64,
    /// Wall-clock seconds the run took.
    pub elapsed_s: f64,
}

impl Summary {
    /// Combines the fault tally with output counters.
    pub fn new(t: &Tally, frames_written: u64, bytes: u64, reordered: u64, elapsed_s: f64) -> Self {
        Summary {
            images: t.images,
            images_intact: t.images_intact,
            fragments: t.fragments,
            delivered: t.delivered,
            frames_written,
            bytes,
            lost: t.lost,
            truncated: t.truncated,
            corrupted: t.corrupted,
            duplicated: t.duplicated,
            withheld: t.withheld,
            reordered,
            elapsed_s,
        }
    }

    /// The summary as a JSON object (fields in a fixed order).
    pub fn to_json(&self) -> String {
        format!(
            "{{\n  \"images\": {},\n  \"images_intact\": {},\n  \"fragments\": {},\n  \"delivered\": {},\n  \"frames_written\": {},\n  \"bytes\": {},\n  \"lost\": {},\n  \"truncated\": {},\n  \"corrupted\": {},\n  \"duplicated\": {},\n  \"withheld\": {},\n  \"reordered\": {},\n  \"elapsed_s\": {:.6}\n}}\n",
            self.images,
            self.images_intact,
            self.fragments,
            self.delivered,
            self.frames_written,
            self.bytes,
            self.lost,
            self.truncated,
            self.corrupted,
            self.duplicated,
            self.withheld,
            self.reordered,
            self.elapsed_s
        )
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed_s.max(1e-9);
        writeln!(
            f,
            "images {} ({} intact), fragments {}, frames written {}, bytes {}",
            self.images, self.images_intact, self.fragments, self.frames_written, self.bytes
        )?;
        writeln!(
            f,
            "faults: lost {}, truncated {}, corrupted {}, duplicated {}, withheld {}, reordered {}",
            self.lost,
            self.truncated,
            self.corrupted,
            self.duplicated,
            self.withheld,
            self.reordered
        )?;
        write!(
            f,
            "elapsed {:.3} s, {}, {}",
            self.elapsed_s,
            packet_rate(self.frames_written as f64 / secs),
            bit_rate(self.bytes as f64 * 8.0 / secs)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_valid_and_complete() {
        let s = Summary {
            images: 2,
            reordered: 5,
            ..Summary::default()
        };
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        for k in [
            "images",
            "images_intact",
            "fragments",
            "delivered",
            "frames_written",
            "bytes",
            "lost",
            "truncated",
            "corrupted",
            "duplicated",
            "withheld",
            "reordered",
            "elapsed_s",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["reordered"], 5);
    }
}
