use core::fmt;

/// Why the verifier dropped a fragment. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drop {
    /// The image already holds a fragment with this index.
    Duplicate,
    /// The index is not below the image's fragment count, or the image has more fragments
    /// than the verifier is configured to hold.
    OutOfRange,
    /// Count, fragment size or total bytes differ from the image's first fragment, or the
    /// payload length is wrong for the index.
    Inconsistent,
    /// The image already completed or was evicted recently: a straggler or late duplicate.
    Late,
}

/// Counters of one verifier. Invariants (checked in tests):
/// `pushed = accepted + duplicate + out_of_range + inconsistent + late` and
/// `accepted = fragments_completed + fragments_evicted + fragments held in flight`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Fragments taken into an image.
    pub accepted: u64,
    /// Dropped: index already present.
    pub duplicate: u64,
    /// Dropped: index out of range or image too large.
    pub out_of_range: u64,
    /// Dropped: header disagrees with the image's first fragment or bad payload length.
    pub inconsistent: u64,
    /// Dropped: fragment of an image that already completed or was evicted.
    pub late: u64,
    /// Images released complete.
    pub images_completed: u64,
    /// Fragments released inside completed images.
    pub fragments_completed: u64,
    /// Incomplete images evicted because the table was full.
    pub evicted_pressure: u64,
    /// Incomplete images evicted because they did not complete in time.
    pub evicted_timeout: u64,
    /// Fragments freed with evicted images.
    pub fragments_evicted: u64,
    /// Finished images forgotten before their late window ended, because `max_finished`
    /// images finished within one window: a straggler of one opens a new image (which is
    /// then evicted) instead of counting as `late`.
    pub forgotten_early: u64,
}

impl Counters {
    /// All fragments ever pushed.
    pub fn pushed(&self) -> u64 {
        self.accepted + self.dropped()
    }

    /// All fragments dropped on arrival.
    pub fn dropped(&self) -> u64 {
        self.duplicate + self.out_of_range + self.inconsistent + self.late
    }

    pub(crate) fn count_drop(&mut self, d: Drop) {
        *match d {
            Drop::Duplicate => &mut self.duplicate,
            Drop::OutOfRange => &mut self.out_of_range,
            Drop::Inconsistent => &mut self.inconsistent,
            Drop::Late => &mut self.late,
        } += 1;
    }

    /// Adds another verifier's counters (e.g. to total over rx queues).
    pub fn add(&mut self, o: &Counters) {
        self.accepted += o.accepted;
        self.duplicate += o.duplicate;
        self.out_of_range += o.out_of_range;
        self.inconsistent += o.inconsistent;
        self.late += o.late;
        self.images_completed += o.images_completed;
        self.fragments_completed += o.fragments_completed;
        self.evicted_pressure += o.evicted_pressure;
        self.evicted_timeout += o.evicted_timeout;
        self.fragments_evicted += o.fragments_evicted;
        self.forgotten_early += o.forgotten_early;
    }

    /// Name/value pairs in a fixed order, for tables and JSON.
    pub fn fields(&self) -> [(&'static str, u64); 11] {
        [
            ("accepted", self.accepted),
            ("duplicate", self.duplicate),
            ("out_of_range", self.out_of_range),
            ("inconsistent", self.inconsistent),
            ("late", self.late),
            ("images_completed", self.images_completed),
            ("fragments_completed", self.fragments_completed),
            ("evicted_pressure", self.evicted_pressure),
            ("evicted_timeout", self.evicted_timeout),
            ("fragments_evicted", self.fragments_evicted),
            ("forgotten_early", self.forgotten_early),
        ]
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.fields().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}
