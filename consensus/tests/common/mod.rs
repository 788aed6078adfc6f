//! The scripted cluster of `lanes_consensus::sim::script`, shared by the consensus integration
//! tests.

#![allow(unused_imports)]

pub use lanes_consensus::sim::script::*;
