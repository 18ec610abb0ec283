//! The readers of `dapr-envoy` (cli/src), by path: the modules keep their own `crate::` paths,
//! so they sit at this crate's root as they do in the binary's. If cli/ moves or splits one of
//! these files, change the path here.
// Unused here: what only the binary calls. `go_duration` is `resiliency::duration` again, for
// its private `timeout`.
#![allow(dead_code, unused_imports, clippy::duplicate_mod)]

#[path = "../../cli/src/yaml.rs"]
pub mod yaml;

#[path = "../../cli/src/runfile/mod.rs"]
pub mod runfile;

#[path = "../../cli/src/dapr_config.rs"]
pub mod dapr_config;

#[path = "../../cli/src/resiliency/mod.rs"]
pub mod resiliency;

/// Go durations (`resiliency::duration` keeps its `timeout` private to the module).
#[path = "../../cli/src/resiliency/duration.rs"]
pub mod go_duration;

/// The Configuration's `spec.tracing` reader, which `dapr_config` calls.
#[path = "../../cli/src/tracing.rs"]
pub mod tracing;
