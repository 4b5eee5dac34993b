//! Verdict reasons and event counters.
//!
//! Every packet the XDP program sees is counted under exactly one [`Reason`]. The numbers are part
//! of the pinned-map ABI that `synguard stats` and older/newer loaders read: a reason is never
//! renumbered and a retired number is never reused (the way Cilium treats its drop reasons). New
//! reasons take the next free number below [`REASON_SLOTS`].
//!
//! Both tables are written once, as rows of [`counter_table!`]: number, stable name, verdict (for
//! reasons) and the doc comment, which doubles as the description `synguard` prints.

/// Number of slots in the per-CPU verdict map. Larger than the number of reasons in use so new
/// reasons can be added without changing the map layout.
pub const REASON_SLOTS: u32 = 64;

/// Event counters: things that happen on top of a packet's verdict. Same numbering rules as
/// [`Reason`].
pub const EVENT_SLOTS: u32 = 16;

/// The XDP action a reason stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Tx,
    Drop,
}

/// One counter table: the `#[repr(u32)]` enum, the array of every value in number order, and
/// `index`, `name` (the stable snake_case name `synguard stats` and its JSON use), `description`
/// (the row's doc comment) and `from_index`. Rows with a verdict also get `verdict`.
macro_rules! counter_table {
    (
        $(#[$meta:meta])*
        pub enum $Enum:ident, all in $ALL:ident {
            $(
                $(#[doc = $doc:literal])+
                $Variant:ident = $num:literal, $name:literal => $verdict:ident;
            )*
        }
    ) => {
        counter_table! {
            @common $(#[$meta])* $Enum $ALL { $( $(#[doc = $doc])+ $Variant = $num, $name; )* }
        }
        impl $Enum {
            /// The XDP action this reason stands for.
            pub const fn verdict(self) -> Verdict {
                match self {
                    $( $Enum::$Variant => Verdict::$verdict, )*
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub enum $Enum:ident, all in $ALL:ident {
            $( $(#[doc = $doc:literal])+ $Variant:ident = $num:literal, $name:literal; )*
        }
    ) => {
        counter_table! {
            @common $(#[$meta])* $Enum $ALL { $( $(#[doc = $doc])+ $Variant = $num, $name; )* }
        }
    };
    (
        @common $(#[$meta:meta])* $Enum:ident $ALL:ident {
            $( $(#[doc = $doc:literal])+ $Variant:ident = $num:literal, $name:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $Enum {
            $( $(#[doc = $doc])+ $Variant = $num, )*
        }

        #[doc = concat!("Every [`", stringify!($Enum), "`] in use, in number order.")]
        pub const $ALL: [$Enum; [$($num),*].len()] = [$($Enum::$Variant),*];

        impl $Enum {
            pub const fn index(self) -> u32 {
                self as u32
            }

            /// Stable snake_case name used by `synguard stats` and its JSON output.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $Enum::$Variant => $name, )*
                }
            }

            /// What the counter means, in one sentence or two (the row's doc comment).
            pub const fn description(self) -> &'static str {
                match self {
                    $( $Enum::$Variant => concat!($($doc),+).trim_ascii_start(), )*
                }
            }

            /// The value with this number, if it is one in use.
            pub fn from_index(index: u32) -> Option<$Enum> {
                $ALL.iter().copied().find(|r| r.index() == index)
            }
        }
    };
}

counter_table! {
    /// What the XDP program did with a packet, and why.
    pub enum Reason, all in REASONS {
        /// Not IPv4 or IPv6 (ARP, LLDP, ...).
        PassNotIp = 0, "pass_not_ip" => Pass;
        /// IP but not TCP.
        PassNotTcp = 1, "pass_not_tcp" => Pass;
        /// An IP fragment: ports are not in every fragment, so fragments are the kernel's business.
        PassFragment = 2, "pass_fragment" => Pass;
        /// TCP to a port that is not protected.
        PassUnprotectedPort = 3, "pass_unprotected_port" => Pass;
        /// Frame too short for its Ethernet/VLAN headers.
        PassMalformedL2 = 4, "pass_malformed_l2" => Pass;
        /// IPv4/IPv6 header truncated or inconsistent (version, IHL, lengths).
        PassMalformedIp = 5, "pass_malformed_ip" => Pass;
        /// More IPv6 extension headers than the program walks.
        PassIpv6ExtLimit = 6, "pass_ipv6_ext_limit" => Pass;
        /// TCP header truncated or with a data offset below 5.
        PassMalformedTcp = 7, "pass_malformed_tcp" => Pass;
        /// Segment that belongs to an existing socket (established, time-wait, request).
        PassEstablished = 8, "pass_established" => Pass;
        /// Handshake ACK carrying a valid SYN cookie: the kernel creates the connection.
        PassCookieAck = 9, "pass_cookie_ack" => Pass;
        /// SYN left to the kernel because cookie mode is not active (auto mode, quiet).
        PassSynToKernel = 10, "pass_syn_to_kernel" => Pass;
        /// SYN left to the kernel while cookies are active, at most one per listener per refresh
        /// period, so the kernel keeps accepting cookies (see `tcp_synq_no_recent_overflow`).
        PassSynListenerRefresh = 11, "pass_syn_listener_refresh" => Pass;
        /// RST to a protected port: the kernel validates its sequence number.
        PassRst = 12, "pass_rst" => Pass;
        /// SYN+ACK arriving at a protected port (we are not a client there): the kernel decides.
        PassSynAck = 13, "pass_syn_ack" => Pass;
        /// SYN answered from XDP with a SYN-ACK carrying a cookie (XDP_TX).
        TxSynAckCookie = 14, "tx_synack_cookie" => Tx;
        /// ACK with no socket and no valid cookie: ACK flood.
        DropAckBadCookie = 15, "drop_ack_bad_cookie" => Drop;
        /// SYN together with FIN.
        DropSynFin = 16, "drop_syn_fin" => Drop;
        /// SYN together with RST.
        DropSynRst = 17, "drop_syn_rst" => Drop;
        /// No flags at all (null scan).
        DropNoFlags = 18, "drop_no_flags" => Drop;
        /// FIN/PSH/URG without ACK: no valid TCP state sends that.
        DropNoAck = 19, "drop_no_ack" => Drop;
        /// Fail-open: the SYN's TCP header could not be read from the frame.
        ErrLoadBytes = 20, "err_load_bytes" => Pass;
        /// Fail-open: the kernel's cookie generator refused the SYN.
        ErrCookieGen = 21, "err_cookie_gen" => Pass;
        /// Fail-open: resizing the frame for the SYN-ACK failed.
        ErrAdjust = 22, "err_adjust" => Pass;
        /// Fail-open: the SYN-ACK could not be laid out (no scratch space, or a layout it does not
        /// know); the frame passes untouched.
        ErrStore = 23, "err_store" => Pass;
        /// Fail-open: a configuration map could not be read.
        ErrConfig = 24, "err_config" => Pass;
        /// Source in the allow list: no limits, no cookies, the kernel decides.
        PassAllowlisted = 25, "pass_allowlisted" => Pass;
        /// Source in the block list.
        DropBlocklisted = 26, "drop_blocklisted" => Drop;
        /// Source over its SYN rate (per-source token bucket).
        DropSourceRate = 27, "drop_source_rate" => Drop;
        /// Source blocked for a while after going over its SYN rate.
        DropSourceBlocked = 28, "drop_source_blocked" => Drop;
        /// SYN-ACKs to this destination prefix over their cap: a reflection attempt.
        DropReflectionCap = 29, "drop_reflection_cap" => Drop;
        /// Monitor mode: the packet would have been answered or dropped (see the monitor counters);
        /// it passes.
        PassMonitor = 30, "pass_monitor" => Pass;
        /// SYN for a connection whose client sent a FIN within the TIME_WAIT period: the server may
        /// hold a TIME_WAIT socket for this 4-tuple, which only the kernel can recycle (a cookie
        /// handshake's ACK would be swallowed by it). Also a SYN on a 4-tuple for which the kernel
        /// created a request socket within that period (it answered an earlier SYN itself): only
        /// the kernel answers its retransmission with the request socket's ISN.
        PassSynRecentClose = 31, "pass_syn_recent_close" => Pass;
        /// Destination MAC broadcast, multicast or another host's (promiscuous mode, a bridge port,
        /// macvlan): the kernel discards TCP that is not `PACKET_HOST` (`tcp_v4_rcv`); not ours to
        /// answer. The frame passes untouched.
        PassNotForHost = 32, "pass_not_for_host" => Pass;
        /// Source address the kernel treats as a martian (0/8, 127/8, multicast, 240/4, broadcast;
        /// IPv6 multicast, unspecified, loopback, IPv4-mapped) or equal to the destination (LAND).
        DropMartianSource = 33, "drop_martian_source" => Drop;
        /// SYN whose IPv4 header checksum is wrong (`ip_rcv_core` would discard it).
        DropBadIpChecksum = 34, "drop_bad_ip_checksum" => Drop;
        /// SYN whose TCP checksum is wrong (neither complete nor the partial form of veth).
        DropBadTcpChecksum = 35, "drop_bad_tcp_checksum" => Drop;
        /// ACK to one of the kernel's own half-open handshakes (a request socket) whose ack number
        /// is not the ISN + 1 the kernel sent: `tcp_check_req` would answer it with an RST.
        DropAckBadRequest = 36, "drop_ack_bad_request" => Drop;
        /// The frame was resized for a SYN-ACK but the reply could not be written into it whole
        /// (the frame came out shorter than asked for): dropped, never sent half-written.
        DropReplyUnwritten = 37, "drop_reply_unwritten" => Drop;
        /// Fail-open: a SYN spread over several buffers (a jumbo frame carrying data) whose first
        /// buffer is shorter than its SYN-ACK would be; the reply is written into the first
        /// buffer, so the kernel answers this one.
        ErrSynShortBuffer = 38, "err_syn_short_buffer" => Pass;
        /// SYN on the 4-tuple of a live connection (the connection table's stamp): its client
        /// lost the connection and reconnects on the same ports. The host answers it with a
        /// challenge ACK (RFC 5961), on which the client resets the old connection; a cookie
        /// SYN-ACK would leave the client's final ACK to the old connection, and the new one stuck.
        PassSynLiveConn = 39, "pass_syn_live_conn" => Pass;
        /// Addressed to the host's MAC but not to one of its addresses: traffic the host
        /// forwards (a router, a node whose containers' addresses are routed to it), not its
        /// own to answer or to drop. The frame passes untouched.
        PassNotLocal = 40, "pass_not_local" => Pass;
        /// SYN to a protected port nothing listens on (over the SYN's family): the host answers
        /// it with a RST, and a cookie SYN-ACK would tell the client (a load balancer's health
        /// check among them) that a stopped service is up. The kernel answers it.
        PassSynNoListener = 41, "pass_syn_no_listener" => Pass;
        /// IPv4 SYN from a source the kernel's reverse-path filter drops (`rp_filter`: strict,
        /// routed out of another interface or not at all; loose, no unicast route): the host
        /// never answers it, so neither does synguard. The kernel drops it.
        PassReversePath = 42, "pass_reverse_path" => Pass;
    }
}

counter_table! {
    /// Event counters (see [`EVENT_SLOTS`]).
    pub enum Event, all in EVENTS {
        /// A SYN to a protected port (the input of flood detection).
        SynProtected = 0, "syn_protected";
        /// A SYN-ACK with a cookie left through XDP_TX.
        CookieSent = 1, "cookie_sent";
        /// An ACK whose cookie the kernel's checker accepted.
        CookieAckAccepted = 2, "cookie_ack_accepted";
        /// Auto mode turned cookies on.
        CookieModeOn = 3, "cookie_mode_on";
        /// Auto mode turned cookies off.
        CookieModeOff = 4, "cookie_mode_off";
        /// A source went over its SYN rate and was blocked for the configured time.
        SourceBlocked = 5, "source_blocked";
        /// A flood event could not be queued (ring buffer full); the counters still saw it.
        FloodEventLost = 6, "flood_event_lost";
        /// A source was added to the per-source table (`--source-rate`). When the table is full the
        /// least recently used source is evicted to make room and starts over with a fresh bucket
        /// (and no block) if it comes back: the count beyond the table's size is what was forgotten.
        SourceTracked = 7, "source_tracked";
        /// A recently-closed record was overwritten by another flow's close while still within the
        /// TIME_WAIT period (the table is direct-mapped): that client's quick reconnect gets a cookie
        /// instead of reaching the kernel.
        CloseRecordReplaced = 8, "close_record_replaced";
        /// Own cookies: a valid cookie ACK passed with the request socket's attributes in its
        /// XDP metadata for the TC program.
        OwnCookieAckMarked = 9, "own_cookie_ack_marked";
        /// Own cookies: the driver refused XDP metadata (`bpf_xdp_adjust_meta`), so a valid
        /// cookie ACK reached TC unmarked.
        OwnMetaUnsupported = 10, "own_meta_unsupported";
        /// Own cookies: the TC program handed the kernel a request socket
        /// (`bpf_sk_assign_tcp_reqsk` returned 0).
        OwnReqskAssigned = 11, "own_reqsk_assigned";
        /// Own cookies: `bpf_sk_assign_tcp_reqsk` refused the attributes.
        OwnReqskFailed = 12, "own_reqsk_failed";
        /// Own cookies: a marked ACK found no listener (or found a socket of its own) in TC.
        OwnNoListener = 13, "own_no_listener";
        /// An ACK the connection table showed to belong to no socket: checked for a cookie and
        /// dropped or passed without the kernel's socket lookup (docs/connection-table.md).
        AckLookupSkipped = 14, "ack_lookup_skipped";
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
        assert_eq!(Event::CookieModeOff as u32, 4);
        assert_eq!(Reason::PassNotForHost as u32, 32);
        assert_eq!(Reason::DropBadTcpChecksum as u32, 35);
        assert_eq!(Reason::DropAckBadRequest as u32, 36);
        assert_eq!(Reason::DropReplyUnwritten as u32, 37);
        assert_eq!(Event::SourceTracked as u32, 7);
        assert_eq!(Event::CloseRecordReplaced as u32, 8);
        assert_eq!(Event::OwnCookieAckMarked as u32, 9);
        assert_eq!(Event::OwnNoListener as u32, 13);
    }

    #[test]
    fn events_are_numbered_densely() {
        for (i, e) in EVENTS.iter().enumerate() {
            assert_eq!(e.index(), i as u32);
        }
        assert!((EVENTS.len() as u32) < EVENT_SLOTS);
    }

    #[test]
    fn descriptions_come_from_the_rows() {
        assert_eq!(
            Reason::PassNotIp.description(),
            "Not IPv4 or IPv6 (ARP, LLDP, ...)."
        );
        assert!(
            Reason::PassSynListenerRefresh
                .description()
                .contains("listener per refresh period")
        );
        assert_eq!(Event::FloodEventLost.name(), "flood_event_lost");
    }

    #[test]
    fn verdicts() {
        assert_eq!(Reason::TxSynAckCookie.verdict(), Verdict::Tx);
        assert_eq!(Reason::DropSynFin.verdict(), Verdict::Drop);
        assert_eq!(Reason::ErrStore.verdict(), Verdict::Pass);
    }
}
