//! Kafka wire protocol for Strom.
//!
//! Layout:
//! - [`versions`]: the table of APIs and versions this broker answers (ApiVersions).
//! - [`frame`]: request-header parsing and response framing around the generated
//!   message types of the `kafka-protocol` crate.
//! - [`batch`]: a zero-copy view of record batch v2 headers, CRC32C validation and
//!   the in-place patches (base offset, leader epoch) the broker makes on append.
//! - [`records`]: decoding and building the records inside a batch, used by the
//!   client, the CLI and the few broker paths that must look inside a batch.
//! - [`compression`]: the four Kafka codecs, with a cap on decompressed size.
//! - [`error`]: Kafka error codes.
//!
//! This crate does no I/O.
#![deny(unsafe_code)]

pub mod batch;
pub mod bounds;
pub mod compression;
pub mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod records;
pub mod versions;

pub use error::ErrorCode;
pub use kafka_protocol;
pub use kafka_protocol::messages;
pub use kafka_protocol::protocol::StrBytes;
