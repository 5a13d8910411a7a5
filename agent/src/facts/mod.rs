//! Fact collection: each area is its own collector returning typed facts; the set is reported as
//! one JSON object (areas that do not apply are absent, never errors).
//!
//! Collectors read files relative to a root directory (normally `/`), so a mounted disk image or a
//! fixture tree can be inspected the same way.

pub mod platform;

use std::path::Path;

use serde::Serialize;

/// All facts of this machine.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FactSet {
    /// OS, kernel, architecture, memory, CPU count.
    pub platform: platform::Platform,
}

/// Collects every area under `root`.
pub fn collect(root: &Path) -> FactSet {
    FactSet {
        platform: platform::collect(root),
    }
}

/// The fact set as the JSON document sent to the coordinator.
pub fn to_json(facts: &FactSet) -> serde_json::Value {
    serde_json::to_value(facts).unwrap_or_else(|_| serde_json::json!({}))
}
