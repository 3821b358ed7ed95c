//! Prometheus exposition for series that are rendered when an object changes and concatenated
//! when scraped.
//!
//! - [`FamilySet`] holds each metric family once, with its HELP and TYPE headers pre-rendered
//!   for both formats, so families shared by several kinds get one header.
//! - [`ObjectRenderer`] writes one object's series straight into byte buffers: label values are
//!   escaped only when they contain `\`, `"` or a newline, and numbers are formatted without
//!   `format!`.
//! - [`Store`] keeps those bytes per object and family and writes a scrape by concatenation,
//!   in a stable order: families by name, then objects by namespace and name. Families
//!   without series are left out, headers included.
//! - [`gzip`] makes the gzip members a store keeps per block of objects, so a compressed scrape
//!   is a concatenation too ([`Store::gzip_parts`]); settled blocks are compacted into one
//!   buffer each ([`Store::settled_blocks`]).

mod encode;
mod family;
pub mod gzip;
mod names;
mod render;
mod store;
mod text;

pub use encode::{Format, negotiate};
pub use family::{FamilyDesc, FamilyId, FamilySet, FamilySetError, MetricType};
pub use names::{is_valid_label_name, is_valid_metric_name, sanitize_label_name};
pub use render::{ObjectRenderer, RenderedObject, SeriesWriter};
pub use store::{BlockId, Compacted, GzipPart, ObjectKey, StaleBlock, Store, StoreStats};
pub use text::{
    MAX_LABEL_VALUE_BYTES, TRUNCATED_MARKER, write_escaped_help, write_escaped_label_value,
    write_sample_value,
};
