//! Verdict reasons and event counters.
//!
//! Every packet the XDP program sees is counted under exactly one [`Reason`]. The numbers are part
//! of the pinned-map ABI that `synguard stats` and older/newer loaders read: a reason is never
//! renumbered and a retired number is never reused (the way Cilium treats its drop reasons). New
//! reasons take the next free number below [`REASON_SLOTS`].

/// Number of slots in the per-CPU verdict map. Larger than the number of reasons in use so new
/// reasons can be added without changing the map layout.
pub const REASON_SLOTS: u32 = 64;

/// What the XDP program did with a packet, and why.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    PassNotIp = 0,
    /// IP but not TCP.
    PassNotTcp = 1,
    /// An IP fragment: ports are not in every fragment, so fragments are the kernel's business.
    PassFragment = 2,
    /// TCP to a port that is not protected.
    PassUnprotectedPort = 3,
    /// Frame too short for its Ethernet/VLAN headers.
    PassMalformedL2 = 4,
    /// IPv4/IPv6 header truncated or inconsistent (version, IHL, lengths).
    PassMalformedIp = 5,
    /// More IPv6 extension headers than the program walks.
    PassIpv6ExtLimit = 6,
    /// TCP header truncated or with a data offset below 5.
    PassMalformedTcp = 7,
    /// Segment that belongs to an existing socket (established, time-wait, request).
    PassEstablished = 8,
    /// Handshake ACK carrying a valid SYN cookie: the kernel creates the connection.
    PassCookieAck = 9,
    /// SYN left to the kernel because cookie mode is not active (auto mode, quiet).
    PassSynToKernel = 10,
    /// SYN left to the kernel while cookies are active, at most one per listener per refresh
    /// period, so the kernel keeps accepting cookies (see `tcp_synq_no_recent_overflow`).
    PassSynListenerRefresh = 11,
    /// RST to a protected port: the kernel validates its sequence number.
    PassRst = 12,
    /// SYN+ACK arriving at a protected port (we are not a client there): the kernel decides.
    PassSynAck = 13,
    /// SYN answered from XDP with a SYN-ACK carrying a cookie (XDP_TX).
    TxSynAckCookie = 14,
    /// ACK with no socket and no valid cookie: ACK flood.
    DropAckBadCookie = 15,
    /// SYN together with FIN.
    DropSynFin = 16,
    /// SYN together with RST.
    DropSynRst = 17,
    /// No flags at all (null scan).
    DropNoFlags = 18,
    /// FIN/PSH/URG without ACK: no valid TCP state sends that.
    DropNoAck = 19,
    /// Fail-open: `bpf_xdp_load_bytes` of the TCP header failed.
    ErrLoadBytes = 20,
    /// Fail-open: the kernel's cookie generator refused the SYN.
    ErrCookieGen = 21,
    /// Fail-open: resizing the frame for the SYN-ACK failed.
    ErrAdjust = 22,
    /// Fail-open: writing the SYN-ACK into the frame failed.
    ErrStore = 23,
    /// Fail-open: a configuration map could not be read.
    ErrConfig = 24,
    /// Source in the allow list: no limits, no cookies, the kernel decides.
    PassAllowlisted = 25,
    /// Source in the block list.
    DropBlocklisted = 26,
    /// Source over its SYN rate (per-source token bucket).
    DropSourceRate = 27,
    /// Source blocked for a while after going over its SYN rate.
    DropSourceBlocked = 28,
    /// SYN-ACKs to this destination prefix over their cap: a reflection attempt.
    DropReflectionCap = 29,
    /// Monitor mode: the packet would have been answered or dropped (see the monitor counters);
    /// it passes.
    PassMonitor = 30,
    /// SYN for a connection whose client sent a FIN within the TIME_WAIT period: the server may
    /// hold a TIME_WAIT socket for this 4-tuple, which only the kernel can recycle (a cookie
    /// handshake's ACK would be swallowed by it).
    PassSynRecentClose = 31,
    /// Destination MAC broadcast, multicast or another host's (promiscuous mode, a bridge port,
    /// macvlan): the kernel discards TCP that is not `PACKET_HOST` (`tcp_v4_rcv`); not ours to
    /// answer. The frame passes untouched.
    PassNotForHost = 32,
    /// Source address the kernel treats as a martian (0/8, 127/8, multicast, 240/4, broadcast;
    /// IPv6 multicast, unspecified, loopback, IPv4-mapped) or equal to the destination (LAND).
    DropMartianSource = 33,
    /// SYN whose IPv4 header checksum is wrong (`ip_rcv_core` would discard it).
    DropBadIpChecksum = 34,
    /// SYN whose TCP checksum is wrong (neither complete nor the partial form of veth).
    DropBadTcpChecksum = 35,
    /// ACK to one of the kernel's own half-open handshakes (a request socket) whose ack number
    /// is not the ISN + 1 the kernel sent: `tcp_check_req` would answer it with an RST.
    DropAckBadRequest = 36,
}

/// Every reason in use, in number order.
pub const REASONS: [Reason; 37] = [
    Reason::PassNotIp,
    Reason::PassNotTcp,
    Reason::PassFragment,
    Reason::PassUnprotectedPort,
    Reason::PassMalformedL2,
    Reason::PassMalformedIp,
    Reason::PassIpv6ExtLimit,
    Reason::PassMalformedTcp,
    Reason::PassEstablished,
    Reason::PassCookieAck,
    Reason::PassSynToKernel,
    Reason::PassSynListenerRefresh,
    Reason::PassRst,
    Reason::PassSynAck,
    Reason::TxSynAckCookie,
    Reason::DropAckBadCookie,
    Reason::DropSynFin,
    Reason::DropSynRst,
    Reason::DropNoFlags,
    Reason::DropNoAck,
    Reason::ErrLoadBytes,
    Reason::ErrCookieGen,
    Reason::ErrAdjust,
    Reason::ErrStore,
    Reason::ErrConfig,
    Reason::PassAllowlisted,
    Reason::DropBlocklisted,
    Reason::DropSourceRate,
    Reason::DropSourceBlocked,
    Reason::DropReflectionCap,
    Reason::PassMonitor,
    Reason::PassSynRecentClose,
    Reason::PassNotForHost,
    Reason::DropMartianSource,
    Reason::DropBadIpChecksum,
    Reason::DropBadTcpChecksum,
    Reason::DropAckBadRequest,
];

/// The XDP action a reason stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Tx,
    Drop,
}

impl Reason {
    pub const fn index(self) -> u32 {
        self as u32
    }

    pub const fn verdict(self) -> Verdict {
        match self {
            Reason::TxSynAckCookie => Verdict::Tx,
            Reason::DropAckBadCookie
            | Reason::DropSynFin
            | Reason::DropSynRst
            | Reason::DropNoFlags
            | Reason::DropNoAck
            | Reason::DropBlocklisted
            | Reason::DropSourceRate
            | Reason::DropSourceBlocked
            | Reason::DropReflectionCap
            | Reason::DropMartianSource
            | Reason::DropBadIpChecksum
            | Reason::DropBadTcpChecksum
            | Reason::DropAckBadRequest => Verdict::Drop,
            _ => Verdict::Pass,
        }
    }

    /// Stable snake_case name used by `synguard stats` and its JSON output.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::PassNotIp => "pass_not_ip",
            Reason::PassNotTcp => "pass_not_tcp",
            Reason::PassFragment => "pass_fragment",
            Reason::PassUnprotectedPort => "pass_unprotected_port",
            Reason::PassMalformedL2 => "pass_malformed_l2",
            Reason::PassMalformedIp => "pass_malformed_ip",
            Reason::PassIpv6ExtLimit => "pass_ipv6_ext_limit",
            Reason::PassMalformedTcp => "pass_malformed_tcp",
            Reason::PassEstablished => "pass_established",
            Reason::PassCookieAck => "pass_cookie_ack",
            Reason::PassSynToKernel => "pass_syn_to_kernel",
            Reason::PassSynListenerRefresh => "pass_syn_listener_refresh",
            Reason::PassRst => "pass_rst",
            Reason::PassSynAck => "pass_syn_ack",
            Reason::TxSynAckCookie => "tx_synack_cookie",
            Reason::DropAckBadCookie => "drop_ack_bad_cookie",
            Reason::DropSynFin => "drop_syn_fin",
            Reason::DropSynRst => "drop_syn_rst",
            Reason::DropNoFlags => "drop_no_flags",
            Reason::DropNoAck => "drop_no_ack",
            Reason::ErrLoadBytes => "err_load_bytes",
            Reason::ErrCookieGen => "err_cookie_gen",
            Reason::ErrAdjust => "err_adjust",
            Reason::ErrStore => "err_store",
            Reason::ErrConfig => "err_config",
            Reason::PassAllowlisted => "pass_allowlisted",
            Reason::DropBlocklisted => "drop_blocklisted",
            Reason::DropSourceRate => "drop_source_rate",
            Reason::DropSourceBlocked => "drop_source_blocked",
            Reason::DropReflectionCap => "drop_reflection_cap",
            Reason::PassMonitor => "pass_monitor",
            Reason::PassSynRecentClose => "pass_syn_recent_close",
            Reason::PassNotForHost => "pass_not_for_host",
            Reason::DropMartianSource => "drop_martian_source",
            Reason::DropBadIpChecksum => "drop_bad_ip_checksum",
            Reason::DropBadTcpChecksum => "drop_bad_tcp_checksum",
            Reason::DropAckBadRequest => "drop_ack_bad_request",
        }
    }

    /// The reason with this number, if it is one in use.
    pub fn from_index(index: u32) -> Option<Reason> {
        REASONS.iter().copied().find(|r| r.index() == index)
    }
}

/// Event counters: things that happen on top of a packet's verdict. Same numbering rules as
/// [`Reason`].
pub const EVENT_SLOTS: u32 = 16;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A SYN to a protected port (the input of flood detection).
    SynProtected = 0,
    /// A SYN-ACK with a cookie left through XDP_TX.
    CookieSent = 1,
    /// An ACK whose cookie the kernel's checker accepted.
    CookieAckAccepted = 2,
    /// Auto mode turned cookies on.
    CookieModeOn = 3,
    /// Auto mode turned cookies off.
    CookieModeOff = 4,
    /// A source went over its SYN rate and was blocked for the configured time.
    SourceBlocked = 5,
    /// A flood event could not be queued (ring buffer full); the counters still saw it.
    FloodEventLost = 6,
    /// A source was added to the per-source table (`--source-rate`). When the table is full the
    /// least recently used source is evicted to make room and starts over with a fresh bucket
    /// (and no block) if it comes back: the count beyond the table's size is what was forgotten.
    SourceTracked = 7,
    /// A recently-closed record was overwritten by another flow's close while still within the
    /// TIME_WAIT period (the table is direct-mapped): that client's quick reconnect gets a cookie
    /// instead of reaching the kernel.
    CloseRecordReplaced = 8,
}

pub const EVENTS: [Event; 9] = [
    Event::SynProtected,
    Event::CookieSent,
    Event::CookieAckAccepted,
    Event::CookieModeOn,
    Event::CookieModeOff,
    Event::SourceBlocked,
    Event::FloodEventLost,
    Event::SourceTracked,
    Event::CloseRecordReplaced,
];

impl Event {
    pub const fn index(self) -> u32 {
        self as u32
    }

    pub const fn name(self) -> &'static str {
        match self {
            Event::SynProtected => "syn_protected",
            Event::CookieSent => "cookie_sent",
            Event::CookieAckAccepted => "cookie_ack_accepted",
            Event::CookieModeOn => "cookie_mode_on",
            Event::CookieModeOff => "cookie_mode_off",
            Event::SourceBlocked => "source_blocked",
            Event::FloodEventLost => "flood_event_lost",
            Event::SourceTracked => "source_tracked",
            Event::CloseRecordReplaced => "close_record_replaced",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_numbered_densely_and_uniquely() {
        for (i, r) in REASONS.iter().enumerate() {
            assert_eq!(r.index(), i as u32, "{r:?} out of order");
            assert_eq!(Reason::from_index(i as u32), Some(*r));
        }
        assert!((REASONS.len() as u32) < REASON_SLOTS);
        assert_eq!(Reason::from_index(REASONS.len() as u32), None);
    }

    #[test]
    fn reason_names_are_unique() {
        for (i, a) in REASONS.iter().enumerate() {
            for b in &REASONS[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn numbers_are_frozen() {
        // The pinned-map ABI: these numbers must never change.
        assert_eq!(Reason::PassNotIp as u32, 0);
        assert_eq!(Reason::PassEstablished as u32, 8);
        assert_eq!(Reason::TxSynAckCookie as u32, 14);
        assert_eq!(Reason::DropAckBadCookie as u32, 15);
        assert_eq!(Reason::ErrConfig as u32, 24);
        assert_eq!(Reason::PassMonitor as u32, 30);
        assert_eq!(Reason::PassNotForHost as u32, 32);
        assert_eq!(Reason::DropBadTcpChecksum as u32, 35);
        assert_eq!(Reason::DropAckBadRequest as u32, 36);
        assert_eq!(Event::CookieModeOff as u32, 4);
        assert_eq!(Event::SourceTracked as u32, 7);
        assert_eq!(Event::CloseRecordReplaced as u32, 8);
    }

    #[test]
    fn events_are_numbered_densely() {
        for (i, e) in EVENTS.iter().enumerate() {
            assert_eq!(e.index(), i as u32);
        }
        assert!((EVENTS.len() as u32) < EVENT_SLOTS);
    }

    #[test]
    fn verdicts() {
        assert_eq!(Reason::TxSynAckCookie.verdict(), Verdict::Tx);
        assert_eq!(Reason::DropSynFin.verdict(), Verdict::Drop);
        assert_eq!(Reason::ErrStore.verdict(), Verdict::Pass);
    }
}
