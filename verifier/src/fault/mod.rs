//! Faults: the plan (typed, validated against what the environment can do), the typed Toxiproxy
//! client that carries most of them, and the timeline that applies and reverts them during a run.

pub mod plan;
pub mod timeline;
pub mod toxiproxy;
