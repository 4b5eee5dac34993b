//! The lab: server, client and attacker network namespaces joined by a bridge
//! ([`topology::Lab`]), and what runs in it: real TCP traffic ([`traffic`]) with TCP_INFO
//! checks ([`tcp_info`]), bounded hping3 floods ([`hping`]), the server kernel's TCP counters
//! ([`kstats`]), a running `synguard` ([`synguard_proc`]), receive paths on threads of their own
//! ([`napi`]), the XDP programs' run-time statistics ([`xdpstats`]) and the veths' ring losses
//! ([`ringstats`]), all entered through [`netns`]. [`fleet`] is a second topology: two servers
//! behind one anycast address.

pub mod fleet;
pub mod hping;
pub mod idle_xdp;
pub mod kstats;
pub mod napi;
pub mod netns;
pub mod ringstats;
pub mod synguard_proc;
pub mod tcp_info;
pub mod topology;
pub mod traffic;
pub mod vlan_tag;
pub mod xdpstats;

pub use topology::Lab;
