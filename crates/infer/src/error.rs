//! The crate's error type.

use std::fmt;

/// Everything that can go wrong loading, planning or running a model.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Reading the model file failed.
    Io {
        /// The file.
        path: String,
        /// The OS error, as text.
        message: String,
    },
    /// The bytes are not a valid ONNX protobuf.
    Decode(String),
    /// A node uses an operator outside the supported set.
    UnsupportedOp {
        /// The node's name (or `#index` when the node is unnamed).
        node: String,
        /// The ONNX operator type, e.g. `LRN`.
        op_type: String,
    },
    /// A supported operator is used with an attribute value, input kind or
    /// broadcast the engine does not implement.
    Unsupported {
        /// The node's name.
        node: String,
        /// The ONNX operator type.
        op_type: String,
        /// What exactly is not supported.
        detail: String,
    },
    /// A dimension of a tensor could not be resolved to a number.
    DynamicShape {
        /// The tensor (graph input or intermediate value).
        tensor: String,
        /// What is unresolved.
        detail: String,
    },
    /// The input given to `run` does not have the shape the engine expects.
    BadInputShape {
        /// What was expected.
        expected: String,
        /// What was given.
        got: String,
    },
    /// The graph is malformed (missing tensor, wrong arity, cycle, ...).
    InvalidModel(String),
    /// An error raised by the tract backend.
    Tract(String),
    /// The requested backend cannot serve the request (not built yet, or
    /// not in that precision).
    Backend(String),
    /// An internal invariant was violated (a bug in the planner).
    Internal(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, message } => write!(f, "cannot read {path}: {message}"),
            Error::Decode(m) => write!(f, "not a valid ONNX model: {m}"),
            Error::UnsupportedOp { node, op_type } => write!(
                f,
                "node '{node}': operator '{op_type}' is not supported (supported: {})",
                crate::onnx::SUPPORTED_OPS.join(", ")
            ),
            Error::Unsupported {
                node,
                op_type,
                detail,
            } => write!(f, "node '{node}' ({op_type}): unsupported: {detail}"),
            Error::DynamicShape { tensor, detail } => {
                write!(f, "cannot resolve the shape of '{tensor}': {detail}")
            }
            Error::BadInputShape { expected, got } => {
                write!(f, "bad input shape: expected {expected}, got {got}")
            }
            Error::InvalidModel(m) => write!(f, "invalid model: {m}"),
            Error::Tract(m) => write!(f, "tract: {m}"),
            Error::Backend(m) => write!(f, "backend: {m}"),
            Error::Internal(m) => write!(f, "internal error (planner bug): {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for `Result<T, netml_infer::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
