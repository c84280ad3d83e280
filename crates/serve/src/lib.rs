//! netml serving: inference functions (IFs) under latency SLOs.
//!
//! ```text
//! image complete -> Server::offer (route by model, admission) -> queue per function
//!   Server::poll(now) -> expired images (answer overloaded) + batches for free instances
//!   (SLAB | fixed:N | max_delay:N,D) -> caller gathers + runs the batch on the instance
//!   Server::complete(now) -> latency model learns, images counted against the SLO
//! ```
//!
//! Everything in [`function`], [`server`], [`latency`] and [`policy`] is pure logic with the
//! clock injected: the live pipeline drives it with its monotonic clock and real engines
//! ([`exec`]); [`sim`] drives the same code with a virtual clock and latency profiles.

#![warn(missing_docs)]

pub mod controller;
pub mod exec;
pub mod function;
pub mod latency;
pub mod place;
pub mod policy;
pub mod profile;
pub mod record;
pub mod server;
pub mod share;
pub mod sim;
pub mod stats;

pub use controller::{Controller, ControllerConfig, Resize};
pub use function::{Batch, Function, FunctionSpec, Queued, Refusal, Refused};
pub use latency::LatencyModel;
pub use policy::Policy;
pub use profile::Profile;
pub use record::{Record, RecordFile, Recorder};
pub use server::{Event, Server};
pub use share::{Device, ShareCurve, Sharing, Unit};
pub use stats::{Decision, FunctionStats, Histogram};
