//! The compiled XDP program on crafted frames through `BPF_PROG_TEST_RUN`: no namespace, no
//! attachment, the real verifier and the kernel's real cookie helpers.

pub mod bench;
pub mod fixture;
pub mod frames;
pub mod own_slots;
