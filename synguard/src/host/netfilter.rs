//! Whether the host's packet filter (nftables, and iptables on its nf_tables backend) can drop
//! or reject segments on their way in. synguard answers SYNs in XDP, before netfilter sees
//! them: a source those rules drop or reject still gets a SYN-ACK for a protected port (its
//! final ACK then meets the rules and goes no further, so no connection is made, but a scan sees
//! the port open). The rules are not evaluated here, only found: `run` and `doctor` say where
//! they are, so that the operator mirrors source restrictions in synguard's lists.
//!
//! Read on a `NETLINK_NETFILTER` socket in the caller's namespace: the chains
//! (`NFT_MSG_GETCHAIN`) and the rules (`NFT_MSG_GETRULE`) of every table. A table "filters what
//! comes in" when one of its base chains hooks the way in (IPv4, IPv6 or inet prerouting and
//! input, inet and netdev ingress) and either drops by policy or reaches, through jumps and
//! gotos, a rule that drops or rejects (a verdict map counts as one: its verdicts are not
//! read). A chain only forwarding reaches counts for nothing (Docker's isolation chains drop,
//! in FORWARD only). Tables of the legacy iptables (x_tables) are not in nftables: they are
//! only noticed (`/proc/net/ip_tables_names`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt, io,
};

use crate::host::netlink::{self, attrs};

/// include/uapi/linux/netfilter/nfnetlink.h and nf_tables.h.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
/// `struct nfgenmsg`: family, version, resource id.
const NFGENMSG: usize = 4;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
/// A lookup's destination register: the verdict register for a verdict map (`vmap`).
const NFTA_LOOKUP_DREG: u16 = 3;
const NFT_REG_VERDICT: u32 = 0;
/// `NFT_JUMP` and `NFT_GOTO` as the verdict code's unsigned 32 bits.
const NFT_JUMP: u32 = -3i32 as u32;
const NFT_GOTO: u32 = -4i32 as u32;
/// `xt_target`'s name, in iptables-nft's compatibility expression "target".
const NFTA_TARGET_NAME: u16 = 1;
/// include/uapi/linux/netfilter.h: the drop verdict, and the hooks on the way in.
const NF_DROP: u32 = 0;
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_LOCAL_IN: u32 = 1;
const NF_INET_INGRESS: u32 = 5;
const NF_NETDEV_INGRESS: u32 = 0;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_NETDEV: u8 = 5;
const NFPROTO_IPV6: u8 = 10;

/// A table whose rules can drop or reject what comes in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filtering {
    /// "inet filter", "ip filter" ...
    pub table: String,
    /// Base chains on the way in that drop by policy.
    pub drop_policy: Vec<String>,
    /// Rules that drop or reject, in any of the table's chains.
    pub dropping_rules: usize,
}

impl fmt::Display for Filtering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table {}", self.table)?;
        let mut parts = Vec::new();
        if !self.drop_policy.is_empty() {
            parts.push(format!("policy drop in {}", self.drop_policy.join(", ")));
        }
        match self.dropping_rules {
            0 => {}
            1 => parts.push("1 rule that drops or rejects".into()),
            n => parts.push(format!("{n} rules that drop or reject")),
        }
        write!(f, " ({})", parts.join("; "))
    }
}

/// What the packet filter of the caller's namespace does on the way in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputFilter {
    pub tables: Vec<Filtering>,
    /// Legacy iptables tables are loaded (not read).
    pub legacy: Vec<String>,
}

impl InputFilter {
    /// Reads it; an error where nftables cannot be asked. Not asked at all where its module is
    /// not loaded: a request to a missing subsystem makes the kernel load it
    /// (`nfnetlink_rcv_msg` calls `request_module`), and reading must change nothing.
    pub fn read() -> io::Result<Self> {
        if !nf_tables_present() {
            return Ok(InputFilter {
                tables: Vec::new(),
                legacy: legacy_tables(),
            });
        }
        let mut chains = Vec::new();
        dump(NFT_MSG_GETCHAIN, NFT_MSG_NEWCHAIN, |family, body| {
            if let Some(c) = parse_chain(family, body) {
                chains.push(c);
            }
        })?;
        let mut rules = Vec::new();
        dump(NFT_MSG_GETRULE, NFT_MSG_NEWRULE, |family, body| {
            if let Some(r) = parse_rule(family, body) {
                rules.push(r);
            }
        })?;
        Ok(InputFilter {
            tables: judge(&chains, &rules),
            legacy: legacy_tables(),
        })
    }

    /// Nothing on the way in can drop or reject (that synguard can see).
    pub fn is_open(&self) -> bool {
        self.tables.is_empty() && self.legacy.is_empty()
    }

    /// What it means for synguard, and what to do, after [`InputFilter::text`].
    pub const ADVICE: &'static str = "synguard answers SYNs to protected ports in XDP, before \
        these rules see them: a source they drop or reject still gets a SYN-ACK (its final ACK \
        then meets the rules, so no connection is made, but a scan sees the port open); mirror \
        their source restrictions with `synguard block add` or the configuration's block list";

    /// One phrase for the log and `doctor`; `None` when nothing filters.
    pub fn text(&self) -> Option<String> {
        let mut parts: Vec<String> = self.tables.iter().map(Filtering::to_string).collect();
        if !self.legacy.is_empty() {
            parts.push(format!(
                "legacy iptables tables {} (not read)",
                self.legacy.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// A chain: its table (family and name), its name, and for a base chain its hook and policy.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Chain {
    family: u8,
    table: String,
    name: String,
    hook: Option<u32>,
    policy: Option<u32>,
}

/// A rule: its table, and whether it can drop or reject.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    family: u8,
    table: String,
    chain: String,
    /// Drops or rejects, or may (a verdict map, whose verdicts are not read).
    drops: bool,
    /// The chains it jumps or goes to.
    jumps: Vec<String>,
}

/// The tables that filter what comes in: those with a base chain on the way in that drops by
/// policy, or from whose base chains on the way in a rule that drops or rejects is reached
/// (through jumps and gotos within the table). A chain only forwarding reaches (Docker's
/// isolation chains) counts for nothing.
fn judge(chains: &[Chain], rules: &[Rule]) -> Vec<Filtering> {
    let mut tables: BTreeMap<(u8, &str), (Filtering, BTreeSet<&str>)> = BTreeMap::new();
    for c in chains.iter().filter(|c| on_the_way_in(c.family, c.hook)) {
        let (t, entry) = tables.entry((c.family, &c.table)).or_insert_with(|| {
            let f = Filtering {
                table: format!("{} {}", family_name(c.family), c.table),
                drop_policy: Vec::new(),
                dropping_rules: 0,
            };
            (f, BTreeSet::new())
        });
        entry.insert(&c.name);
        if c.policy == Some(NF_DROP) {
            t.drop_policy.push(c.name.clone());
        }
    }
    for ((family, table), (t, entry)) in &mut tables {
        let mine: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.family == *family && r.table == *table)
            .collect();
        let reached = reachable(entry, &mine);
        t.dropping_rules = mine
            .iter()
            .filter(|r| r.drops && reached.contains(r.chain.as_str()))
            .count();
    }
    tables
        .into_values()
        .map(|(t, _)| t)
        .filter(|t| !t.drop_policy.is_empty() || t.dropping_rules > 0)
        .collect()
}

/// The chains `rules` (of one table) reach from `entry` by their jumps and gotos, `entry`
/// included.
fn reachable<'a>(entry: &BTreeSet<&'a str>, rules: &[&'a Rule]) -> BTreeSet<&'a str> {
    let mut reached = entry.clone();
    let mut todo: Vec<&str> = entry.iter().copied().collect();
    while let Some(chain) = todo.pop() {
        for to in rules
            .iter()
            .filter(|r| r.chain == chain)
            .flat_map(|r| &r.jumps)
        {
            if reached.insert(to.as_str()) {
                todo.push(to);
            }
        }
    }
    reached
}

/// A base chain whose hook sees segments to the host before the socket does.
fn on_the_way_in(family: u8, hook: Option<u32>) -> bool {
    matches!(
        (family, hook),
        (
            NFPROTO_IPV4 | NFPROTO_IPV6 | NFPROTO_INET,
            Some(NF_INET_PRE_ROUTING | NF_INET_LOCAL_IN)
        ) | (NFPROTO_INET, Some(NF_INET_INGRESS))
            | (NFPROTO_NETDEV, Some(NF_NETDEV_INGRESS))
    )
}

fn family_name(family: u8) -> &'static str {
    match family {
        NFPROTO_INET => "inet",
        NFPROTO_IPV4 => "ip",
        NFPROTO_IPV6 => "ip6",
        NFPROTO_NETDEV => "netdev",
        _ => "other",
    }
}

/// A dump of the nftables subsystem's `request`: `each` gets the family and attributes of every
/// `reply` message.
fn dump(request: u16, reply: u16, mut each: impl FnMut(u8, &[u8])) -> io::Result<()> {
    let kind = |msg: u16| NFNL_SUBSYS_NFTABLES << 8 | msg;
    // nfgenmsg: every family, version 0.
    let body = [libc::NFPROTO_UNSPEC as u8, 0, 0, 0];
    netlink::dump(libc::NETLINK_NETFILTER, kind(request), &body, |k, msg| {
        if k == kind(reply)
            && let Some(family) = msg.first()
        {
            each(*family, msg.get(NFGENMSG..).unwrap_or(&[]));
        }
    })
}

/// A chain from an `NFT_MSG_NEWCHAIN` message's attributes.
fn parse_chain(family: u8, body: &[u8]) -> Option<Chain> {
    let (mut table, mut name, mut hook, mut policy) = (None, None, None, None);
    for (ty, v) in attrs(body) {
        match ty {
            NFTA_CHAIN_TABLE => table = Some(string(v)),
            NFTA_CHAIN_NAME => name = Some(string(v)),
            NFTA_CHAIN_HOOK => {
                hook = attrs(v)
                    .find(|(t, _)| *t == NFTA_HOOK_HOOKNUM)
                    .and_then(|(_, v)| be32(v));
            }
            NFTA_CHAIN_POLICY => policy = be32(v),
            _ => {}
        }
    }
    Some(Chain {
        family,
        table: table?,
        name: name?,
        hook,
        policy,
    })
}

/// A rule from an `NFT_MSG_NEWRULE` message's attributes: its chain, whether an expression
/// drops (a drop verdict), rejects (`reject`, or iptables' `REJECT` target) or may (a verdict
/// map), and the chains it jumps or goes to.
fn parse_rule(family: u8, body: &[u8]) -> Option<Rule> {
    let (mut table, mut chain) = (None, None);
    let (mut drops, mut jumps) = (false, Vec::new());
    for (ty, v) in attrs(body) {
        match ty {
            NFTA_RULE_TABLE => table = Some(string(v)),
            NFTA_RULE_CHAIN => chain = Some(string(v)),
            NFTA_RULE_EXPRESSIONS => {
                for (_, e) in attrs(v).filter(|(t, _)| *t == NFTA_LIST_ELEM) {
                    match expr(e) {
                        Expr::Drops => drops = true,
                        Expr::Jumps(to) => jumps.push(to),
                        Expr::Other => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Rule {
        family,
        table: table?,
        chain: chain?,
        drops,
        jumps,
    })
}

/// What an expression does, as far as the way in goes.
enum Expr {
    Drops,
    Jumps(String),
    Other,
}

/// One expression (`NFTA_LIST_ELEM`'s attributes).
fn expr(e: &[u8]) -> Expr {
    let mut name = String::new();
    let mut data: &[u8] = &[];
    for (ty, v) in attrs(e) {
        match ty {
            NFTA_EXPR_NAME => name = string(v),
            NFTA_EXPR_DATA => data = v,
            _ => {}
        }
    }
    match name.as_str() {
        "reject" => Expr::Drops,
        "immediate" => verdict(data),
        "target" if attrs(data).any(|(t, n)| t == NFTA_TARGET_NAME && string(n) == "REJECT") => {
            Expr::Drops
        }
        "lookup"
            if attrs(data)
                .any(|(t, r)| t == NFTA_LOOKUP_DREG && be32(r) == Some(NFT_REG_VERDICT)) =>
        {
            Expr::Drops
        }
        _ => Expr::Other,
    }
}

/// An `immediate` expression's verdict: drop, a jump or goto, or anything else.
fn verdict(data: &[u8]) -> Expr {
    let fields: Vec<(u16, &[u8])> = attrs(data)
        .filter(|(t, _)| *t == NFTA_IMMEDIATE_DATA)
        .flat_map(|(_, d)| attrs(d))
        .filter(|(t, _)| *t == NFTA_DATA_VERDICT)
        .flat_map(|(_, v)| attrs(v))
        .collect();
    let code = fields
        .iter()
        .find(|(t, _)| *t == NFTA_VERDICT_CODE)
        .and_then(|(_, c)| be32(c));
    let chain = fields
        .iter()
        .find(|(t, _)| *t == NFTA_VERDICT_CHAIN)
        .map(|(_, c)| string(c));
    match (code, chain) {
        (Some(NF_DROP), _) => Expr::Drops,
        (Some(NFT_JUMP | NFT_GOTO), Some(to)) => Expr::Jumps(to),
        _ => Expr::Other,
    }
}

/// A NUL-terminated string attribute.
fn string(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// nftables' numbers are big-endian.
fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

/// Whether nftables is in the kernel now: built in (a kernel without modules, or listed in
/// `modules.builtin`) or its module loaded.
fn nf_tables_present() -> bool {
    let Ok(loaded) = std::fs::read_to_string("/proc/modules") else {
        // No module support: whatever netfilter has is built in, and nothing can be loaded.
        return true;
    };
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let builtin =
        std::fs::read_to_string(format!("/lib/modules/{}/modules.builtin", release.trim()))
            .unwrap_or_default();
    module_listed(&loaded, &builtin)
}

/// `nf_tables` among the loaded modules (`/proc/modules`: a name first on each line) or the
/// built-in ones (`modules.builtin`: a path each, `kernel/net/netfilter/nf_tables.ko`).
fn module_listed(loaded: &str, builtin: &str) -> bool {
    loaded
        .lines()
        .any(|l| l.split(' ').next() == Some("nf_tables"))
        || builtin.lines().any(|l| l.ends_with("/nf_tables.ko"))
}

/// The legacy iptables tables (`ip_tables`, `ip6_tables`) of this namespace, by name: their
/// rules are not read.
fn legacy_tables() -> Vec<String> {
    ["/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"]
        .iter()
        .zip(["ip", "ip6"])
        .flat_map(|(path, family)| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(|t| format!("{family} {t}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attribute: length, type, value, padding.
    fn attr(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut b = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        b.extend(ty.to_ne_bytes());
        b.extend(value);
        b.resize(b.len().next_multiple_of(4), 0);
        b
    }

    fn cstr(s: &str) -> Vec<u8> {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        b
    }

    fn chain(table: &str, name: &str, hook: Option<u32>, policy: Option<u32>) -> Vec<u8> {
        let mut b = attr(NFTA_CHAIN_TABLE, &cstr(table));
        b.extend(attr(NFTA_CHAIN_NAME, &cstr(name)));
        if let Some(h) = hook {
            b.extend(attr(
                NFTA_CHAIN_HOOK,
                &attr(NFTA_HOOK_HOOKNUM, &h.to_be_bytes()),
            ));
        }
        if let Some(p) = policy {
            b.extend(attr(NFTA_CHAIN_POLICY, &p.to_be_bytes()));
        }
        b
    }

    fn expr(name: &str, data: &[u8]) -> Vec<u8> {
        let mut e = attr(NFTA_EXPR_NAME, &cstr(name));
        e.extend(attr(NFTA_EXPR_DATA, data));
        attr(NFTA_LIST_ELEM, &e)
    }

    fn verdict_data(code: u32, to: Option<&str>) -> Vec<u8> {
        let mut v = attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
        if let Some(to) = to {
            v.extend(attr(NFTA_VERDICT_CHAIN, &cstr(to)));
        }
        attr(NFTA_IMMEDIATE_DATA, &attr(NFTA_DATA_VERDICT, &v))
    }

    fn rule(exprs: &[Vec<u8>]) -> Vec<u8> {
        let mut b = attr(NFTA_RULE_TABLE, &cstr("filter"));
        b.extend(attr(NFTA_RULE_CHAIN, &cstr("input")));
        b.extend(attr(NFTA_RULE_EXPRESSIONS, &exprs.concat()));
        b
    }

    #[test]
    fn nftables_is_asked_only_when_its_module_is_in() {
        let loaded =
            "nf_tables 360448 1 nft_compat, Live 0x0\nnfnetlink 20480 2 nf_tables, Live 0x0";
        assert!(module_listed(loaded, ""));
        assert!(!module_listed(
            "nfnetlink 20480 0 - Live 0x0\nnf_tables_x 1 0 - Live 0",
            ""
        ));
        assert!(module_listed("", "kernel/net/netfilter/nf_tables.ko\n"));
        assert!(!module_listed("", "kernel/net/netfilter/nft_ct.ko\n"));
    }

    #[test]
    fn chains_and_rules_are_read_from_their_attributes() {
        let c = parse_chain(NFPROTO_INET, &chain("filter", "input", Some(1), Some(0))).unwrap();
        assert_eq!((c.table.as_str(), c.name.as_str()), ("filter", "input"));
        assert_eq!((c.hook, c.policy), (Some(NF_INET_LOCAL_IN), Some(NF_DROP)));
        let regular = parse_chain(NFPROTO_INET, &chain("filter", "ssh", None, None)).unwrap();
        assert_eq!((regular.hook, regular.policy), (None, None));
        let read = |exprs: &[Vec<u8>]| parse_rule(NFPROTO_INET, &rule(exprs)).unwrap();
        let drop = read(&[
            expr("payload", &[]),
            expr("immediate", &verdict_data(0, None)),
        ]);
        assert_eq!((drop.chain.as_str(), drop.drops), ("input", true));
        assert!(!read(&[expr("immediate", &verdict_data(1, None))]).drops);
        assert!(read(&[expr("reject", &[])]).drops);
        let xt = |name: &str| read(&[expr("target", &attr(NFTA_TARGET_NAME, &cstr(name)))]);
        assert!(xt("REJECT").drops);
        assert!(!xt("LOG").drops);
        let jump = read(&[expr("immediate", &verdict_data(NFT_JUMP, Some("ssh")))]);
        assert_eq!((jump.drops, jump.jumps), (false, vec!["ssh".to_string()]));
        let goto = read(&[expr("immediate", &verdict_data(NFT_GOTO, Some("web")))]);
        assert_eq!(goto.jumps, ["web"]);
        // A verdict map may drop: its verdicts are not read.
        let vmap = expr(
            "lookup",
            &attr(NFTA_LOOKUP_DREG, &NFT_REG_VERDICT.to_be_bytes()),
        );
        assert!(read(&[vmap]).drops);
        let set = expr("lookup", &attr(NFTA_LOOKUP_DREG, &8u32.to_be_bytes()));
        assert!(!read(&[set]).drops);
        // Cut short: no table or chain, no rule.
        assert_eq!(
            parse_rule(NFPROTO_INET, &attr(NFTA_RULE_EXPRESSIONS, &[])),
            None
        );
    }

    fn c(family: u8, table: &str, name: &str, hook: Option<u32>, policy: Option<u32>) -> Chain {
        Chain {
            family,
            table: table.into(),
            name: name.into(),
            hook,
            policy,
        }
    }

    fn r(family: u8, table: &str, chain: &str, drops: bool, jumps: &[&str]) -> Rule {
        Rule {
            family,
            table: table.into(),
            chain: chain.into(),
            drops,
            jumps: jumps.iter().map(|j| j.to_string()).collect(),
        }
    }

    const ACCEPT: Option<u32> = Some(1);
    const FORWARD: Option<u32> = Some(2);

    #[test]
    fn a_table_filters_what_comes_in_when_a_chain_on_the_way_in_can_drop() {
        let input = Some(NF_INET_LOCAL_IN);
        let chains = [
            c(NFPROTO_INET, "filter", "input", input, Some(NF_DROP)),
            c(NFPROTO_INET, "filter", "ssh", None, None),
            c(
                NFPROTO_IPV4,
                "nat",
                "pre",
                Some(NF_INET_PRE_ROUTING),
                ACCEPT,
            ),
            c(NFPROTO_IPV4, "fw", "forward", FORWARD, Some(NF_DROP)),
            c(NFPROTO_IPV6, "mangle", "input", input, ACCEPT),
            c(
                NFPROTO_NETDEV,
                "edge",
                "in",
                Some(NF_NETDEV_INGRESS),
                ACCEPT,
            ),
        ];
        let rules = [
            r(NFPROTO_INET, "filter", "input", false, &["ssh"]),
            r(NFPROTO_INET, "filter", "ssh", true, &[]),
            r(NFPROTO_INET, "filter", "input", false, &[]),
            r(NFPROTO_IPV4, "fw", "forward", true, &[]),
            r(NFPROTO_IPV6, "mangle", "input", false, &[]),
            r(NFPROTO_NETDEV, "edge", "in", true, &[]),
        ];
        let found: Vec<String> = judge(&chains, &rules)
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(
            found,
            [
                "table inet filter (policy drop in input; 1 rule that drops or rejects)",
                "table netdev edge (1 rule that drops or rejects)",
            ]
        );
        // Forwarding only, accepting policies without dropping rules: nothing.
        assert!(judge(&chains[2..5], &rules[3..5]).is_empty());
    }

    /// Docker's table: INPUT accepts, FORWARD jumps to chains that drop. Only the chains the way
    /// in reaches count.
    #[test]
    fn rules_only_forwarding_reaches_do_not_count() {
        let chains = [
            c(
                NFPROTO_IPV4,
                "filter",
                "INPUT",
                Some(NF_INET_LOCAL_IN),
                ACCEPT,
            ),
            c(NFPROTO_IPV4, "filter", "FORWARD", FORWARD, Some(NF_DROP)),
            c(NFPROTO_IPV4, "filter", "DOCKER-ISOLATION", None, None),
        ];
        let mut rules = vec![
            r(
                NFPROTO_IPV4,
                "filter",
                "FORWARD",
                false,
                &["DOCKER-ISOLATION"],
            ),
            r(NFPROTO_IPV4, "filter", "DOCKER-ISOLATION", true, &[]),
        ];
        assert!(judge(&chains, &rules).is_empty());
        // INPUT jumping there too makes them count.
        rules.push(r(
            NFPROTO_IPV4,
            "filter",
            "INPUT",
            false,
            &["DOCKER-ISOLATION"],
        ));
        let found: Vec<String> = judge(&chains, &rules)
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(found, ["table ip filter (1 rule that drops or rejects)"]);
    }
}
