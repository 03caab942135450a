//! Faults: the typed Toxiproxy client, and (later) the fault timeline that drives it.

pub mod toxiproxy;
