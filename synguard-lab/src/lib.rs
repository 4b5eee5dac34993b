//! synguard's lab: packet fixtures run through BPF_PROG_TEST_RUN, network-namespace topologies
//! with real TCP stacks, and the benchmarks. Everything here needs root.
pub mod bench;
pub mod fixture;
pub mod frames;
