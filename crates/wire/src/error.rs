use core::fmt;

/// Why a buffer was not accepted as a packet of the expected format.
///
/// Each variant is a distinct drop reason; pipelines count them separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header (or than the length the header declares).
    Truncated,
    /// A magic number, version or fixed field does not have the value the format requires.
    Unrecognized,
    /// Fields that must agree with each other do not (for example a fragment count that does
    /// not match total bytes and fragment size, or a descriptor whose shape disagrees with the
    /// byte count).
    Malformed,
    /// A header checksum does not verify.
    Checksum,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Unrecognized => "unrecognized packet (bad magic, version or fixed field)",
            Error::Malformed => "malformed packet (inconsistent fields)",
            Error::Checksum => "header checksum mismatch",
        })
    }
}

impl std::error::Error for Error {}

/// Result of a wire-format operation.
pub type Result<T> = core::result::Result<T, Error>;
