//! The machine synguard runs on: kernel settings (`sysctl`), interface facts (`nic`), the host's
//! own addresses (`addrs`) and local routes (`local_routes`), what a SYN-ACK takes from them
//! (`facts`), queue and offload facts (`ethtool`), link partner and XDP attachment (`rtnl`, on
//! the rtnetlink socket of `netlink`), clocks (`clock`),
//! network namespaces (`netns`), the BPF filesystem (`bpffs`), errors on paths (`io`), facts from
//! the kernel's BTF (`btf`), readiness and status to systemd (`notify`), whether we may use BPF
//! (`privilege`), the cgroup v2 mount (`cgroup`), the TCP socket lists (`proc_net`), what the
//! packet filter can drop on the way in (`netfilter`), the
//! SYN-flood tuning `doctor` checks (`tuning`) and fault injection for tests (`fault`). Imports
//! only `config`.

pub mod addr_watch;
pub mod addrs;
pub mod bpffs;
pub mod btf;
pub mod cgroup;
pub mod clock;
pub mod ethtool;
pub mod facts;
pub mod fault;
pub mod io;
pub mod listeners;
pub mod local_routes;
pub mod netfilter;
pub mod netlink;
pub mod netns;
pub mod nic;
pub mod notify;
pub mod privilege;
pub mod proc_net;
pub mod reverse_path;
pub mod rtnl;
pub mod secret;
pub mod sysctl;
pub mod tuning;
