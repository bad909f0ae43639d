//! What rsttrace needs to know about the running kernel's types, read from
//! its BTF (`/sys/kernel/btf/vmlinux`): struct member offsets for the eBPF
//! programs, and enum names for decoding (their numbers move between kernels).

use std::{collections::HashMap, path::Path};

use anyhow::{Context as _, bail};
use btf_rs::{Btf, BtfType, Type};
// btf-rs iterates types fallibly.
use fallible_iterator::FallibleIterator as _;
use rsttrace_common::kernel::{ABSENT, KernelOffsets};

use super::names::{DropReason, KernelNames, ResetReason, TcpState, TwStatus};

pub const DEFAULT_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Maps the BTF instead of parsing all of it: btf-rs then keeps one offset
/// per type (~1 MB) where a full parse builds ~50 MB of indexes, which would
/// be the daemon's peak memory. sysfs files are not mappable on every kernel:
/// those are copied into a memfd first.
fn map(path: &Path) -> anyhow::Result<Btf> {
    if let Ok(btf) = Btf::from_file_with_backend(path, btf_rs::Backend::Mmap) {
        return Ok(btf);
    }
    // SAFETY: a valid NUL-terminated name and flags.
    let fd = unsafe { libc::memfd_create(c"rsttrace-btf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: a fresh fd we own.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // Streamed, so the BTF is never in memory twice.
    std::io::copy(&mut std::fs::File::open(path)?, &mut file)?;
    let btf = Btf::from_file_with_backend(format!("/proc/self/fd/{fd}"), btf_rs::Backend::Mmap)?;
    Ok(btf)
}

/// The named types rsttrace looks up, found in one pass at start-up: with
/// the mapped BTF every lookup by name would otherwise scan all types.
const INDEXED: [&str; 17] = [
    "sock_common",
    "net",
    "sock",
    "tcp_sock",
    "sk_buff",
    "net_device",
    "tcp_timewait_sock",
    "sk_rst_reason",
    "skb_drop_reason",
    "tcp_tw_status",
    "tcp_timewait_state_process",
    "sock_flags",
    "rtable",
    "rt6_info",
    "tcp_reset",
    "tcp_create_openreq_child",
    "tcp_finish_connect",
];

pub struct KernelTypes {
    btf: Btf,
    /// Types of the `INDEXED` names.
    indexed: HashMap<&'static str, Vec<Type>>,
    /// Members of the (anonymous) enum that holds TCP_ESTABLISHED.
    tcp_states: Option<Vec<(u32, String)>>,
}

impl KernelTypes {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            bail!(
                "kernel BTF not found at {}: rsttrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y, or a BTF file for it given with --btf FILE",
                path.display()
            );
        }
        let btf = map(path).with_context(|| format!("cannot parse BTF {}", path.display()))?;
        let mut types = Self { btf, indexed: HashMap::new(), tcp_states: None };
        types.index().with_context(|| format!("cannot read BTF {}", path.display()))?;
        Ok(types)
    }

    /// One pass over every type: the `INDEXED` ones and the TCP states.
    fn index(&mut self) -> anyhow::Result<()> {
        let mut iter = self.btf.type_iter();
        while let Some(ty) = iter.next()? {
            let named: &dyn BtfType = match &ty {
                Type::Struct(s) => s,
                Type::Enum(e) => e,
                Type::Func(f) => f,
                _ => continue,
            };
            let name = self.btf.resolve_name(named).unwrap_or_default();
            if let Type::Enum(e) = &ty
                && name.is_empty()
                && self.tcp_states.is_none()
            {
                let members = self.enum_members(e);
                if members.iter().any(|(_, n)| n == "TCP_ESTABLISHED") {
                    self.tcp_states = Some(members);
                }
            } else if let Some(wanted) = INDEXED.iter().find(|w| **w == name) {
                self.indexed.entry(wanted).or_default().push(ty);
            }
        }
        Ok(())
    }

    /// Types called `name`: from the index, or by a scan for other names.
    fn types_named(&self, name: &str) -> Vec<Type> {
        match self.indexed.get(name) {
            Some(types) => types.clone(),
            None if INDEXED.contains(&name) => Vec::new(),
            None => self.btf.resolve_types_by_name(name).unwrap_or_default(),
        }
    }

    /// Offsets the programs read sockets with; `ABSENT` for what this kernel
    /// lacks (the dependent output is then null, never guessed).
    pub fn offsets(&self, names: &KernelNames) -> KernelOffsets {
        let mut minisock_state_mask = 0;
        for state in [TcpState::TimeWait, TcpState::NewSynRecv] {
            if let Some(n) = names.tcp_state_number(&state).filter(|n| *n < 32) {
                minisock_state_mask |= 1 << n;
            }
        }
        let state = |state: TcpState| names.tcp_state_number(&state).unwrap_or(ABSENT);
        let (tstamp_ok_byte, tstamp_ok_bit) = self.bit_of("tcp_sock", &["rx_opt", "tstamp_ok"]).unwrap_or((ABSENT, 0));
        // Where kernels differ in width (int vs u8, u32 vs long), the
        // programs read the low bytes, which little-endian puts first.
        KernelOffsets {
            skc_family: self.offset_of("sock_common", &["skc_family"], &[2]),
            skc_state: self.offset_of("sock_common", &["skc_state"], &[1]),
            skc_daddr: self.offset_of("sock_common", &["skc_daddr"], &[4]),
            skc_rcv_saddr: self.offset_of("sock_common", &["skc_rcv_saddr"], &[4]),
            skc_dport: self.offset_of("sock_common", &["skc_dport"], &[2]),
            inet_sport: self.offset_of("inet_sock", &["inet_sport"], &[2]),
            skc_v6_daddr: self.offset_of("sock_common", &["skc_v6_daddr"], &[16]),
            skc_v6_rcv_saddr: self.offset_of("sock_common", &["skc_v6_rcv_saddr"], &[16]),
            sk_protocol: self.offset_of("sock", &["sk_protocol"], &[2]),
            skc_net: self.offset_of("sock_common", &["skc_net", "net"], &[8]),
            net_ns_inum: self.offset_of("net", &["ns", "inum"], &[4]),
            net_tcp_rfc1337: self.offset_of("net", &["ipv4", "sysctl_tcp_rfc1337"], &[1, 4]),
            sk_lock_owned: self.offset_of("sock", &["sk_lock", "owned"], &[4]),
            sk_err: self.offset_of("sock", &["sk_err"], &[4]),
            skc_flags: self.offset_of("sock_common", &["skc_flags"], &[8]),
            sk_dst_cache: self.offset_of("sock", &["sk_dst_cache"], &[8]),
            rt_uses_gateway: self.offset_of("rtable", &["rt_uses_gateway"], &[1]),
            rt6i_flags: self.offset_of("rt6_info", &["rt6i_flags"], &[4]),
            // `struct minmax { struct minmax_sample { u32 t; u32 v; } s[3]; }`:
            // the best sample's value, 4 bytes in.
            tcp_rtt_min: match self.offset_of("tcp_sock", &["rtt_min"], &[24]) {
                ABSENT => ABSENT,
                offset => offset + 4,
            },
            sock_flag_keepopen: self
                .named_enum("sock_flags")
                .and_then(|flags| flags.into_iter().find(|(_, n)| n == "SOCK_KEEPOPEN"))
                .map_or(ABSENT, |(bit, _)| bit),
            tcp_keepalive_time: self.offset_of("tcp_sock", &["keepalive_time"], &[4]),
            net_tcp_keepalive_time: self.offset_of("net", &["ipv4", "sysctl_tcp_keepalive_time"], &[4]),
            tcp_lsndtime: self.offset_of("tcp_sock", &["lsndtime"], &[4]),
            tcp_rcv_tstamp: self.offset_of("tcp_sock", &["rcv_tstamp"], &[4]),
            icsk_lrcvtime: self.offset_of("tcp_sock", &["inet_conn", "icsk_ack", "lrcvtime"], &[4]),
            tcp_rcv_nxt: self.offset_of("tcp_sock", &["rcv_nxt"], &[4]),
            tcp_snd_nxt: self.offset_of("tcp_sock", &["snd_nxt"], &[4]),
            tcp_snd_una: self.offset_of("tcp_sock", &["snd_una"], &[4]),
            tcp_ts_recent: self.offset_of("tcp_sock", &["rx_opt", "ts_recent"], &[4]),
            tcp_ts_recent_stamp: self.offset_of("tcp_sock", &["rx_opt", "ts_recent_stamp"], &[4, 8]),
            tcp_tstamp_ok_byte: tstamp_ok_byte,
            tcp_tstamp_ok_bit: tstamp_ok_bit,
            // `tw_rcv_nxt` is a macro for this sock_common member.
            tw_rcv_nxt: self.offset_of("sock_common", &["skc_tw_rcv_nxt"], &[4]),
            tw_ts_recent: self.offset_of("tcp_timewait_sock", &["tw_ts_recent"], &[4]),
            tw_ts_recent_stamp: self.offset_of("tcp_timewait_sock", &["tw_ts_recent_stamp"], &[4, 8]),
            skb_dev: self.offset_of("sk_buff", &["dev"], &[8]),
            skb_head: self.offset_of("sk_buff", &["head"], &[8]),
            skb_transport_header: self.offset_of("sk_buff", &["transport_header"], &[2]),
            skb_network_header: self.offset_of("sk_buff", &["network_header"], &[2]),
            netdev_nd_net: self.offset_of("net_device", &["nd_net", "net"], &[8]),
            sk_cgroup: self.offset_of("sock", &["sk_cgrp_data", "cgroup"], &[8]),
            cgroup_kn: self.offset_of("cgroup", &["kn"], &[8]),
            kernfs_node_id: self.offset_of("kernfs_node", &["id"], &[8]),
            minisock_state_mask,
            state_established: state(TcpState::Established),
            state_syn_sent: state(TcpState::SynSent),
            state_syn_recv: state(TcpState::SynRecv),
            state_fin_wait2: state(TcpState::FinWait2),
            state_time_wait: state(TcpState::TimeWait),
            state_close: state(TcpState::Close),
            state_closing: state(TcpState::Closing),
            state_listen: state(TcpState::Listen),
            state_close_wait: state(TcpState::CloseWait),
            state_last_ack: state(TcpState::LastAck),
        }
    }

    pub fn names(&self) -> anyhow::Result<KernelNames> {
        let tcp_states = self
            .tcp_states
            .clone()
            .context("kernel BTF has no enum with TCP_ESTABLISHED")?
            .into_iter()
            .filter_map(|(v, n)| Some((v, TcpState::from_name(n.strip_prefix("TCP_")?))))
            .collect();
        let members = |name: &str, prefix: &str| -> Vec<(u32, String)> {
            let members = self.named_enum(name).unwrap_or_default();
            members.into_iter().map(|(v, n)| (v, n.trim_start_matches(prefix).to_string())).collect()
        };
        Ok(KernelNames {
            tcp_states,
            reset_reasons: typed(members("sk_rst_reason", "SK_RST_REASON_"), ResetReason::from_name),
            drop_reasons: typed(members("skb_drop_reason", "SKB_DROP_REASON_"), DropReason::from_name),
            tw_statuses: typed(members("tcp_tw_status", "TCP_TW_"), TwStatus::from_name),
        })
    }

    /// Parameter names of a kernel function, from its BTF prototype.
    pub fn function_params(&self, name: &str) -> Option<Vec<String>> {
        let func = self.types_named(name).into_iter().find_map(|t| match t {
            Type::Func(f) => Some(f),
            _ => None,
        })?;
        let Type::FuncProto(proto) = self.btf.resolve_chained_type(&func).ok()? else { return None };
        Some(proto.parameters.iter().map(|p| self.btf.resolve_name(p).unwrap_or_default()).collect())
    }

    /// Byte offset of `path` inside `struct name`, looking through anonymous
    /// structs and unions; `ABSENT` if missing or not one of `sizes` wide.
    pub fn offset_of(&self, name: &str, path: &[&str], sizes: &[usize]) -> u32 {
        match self.member(name, path) {
            Some((offset, found)) if sizes.contains(&found) => offset,
            Some((_, found)) => {
                log::warn!("kernel BTF: {name}.{} is {found} bytes, expected {sizes:?}", path.join("."));
                ABSENT
            }
            None => {
                log::debug!("kernel BTF has no {name}.{}", path.join("."));
                ABSENT
            }
        }
    }

    /// (byte offset, bit 0-7) of a one-bit bitfield, for the programs to
    /// test `(byte >> bit) & 1`.
    pub fn bit_of(&self, name: &str, path: &[&str]) -> Option<(u32, u32)> {
        let (bits, _, width) = self.member_bits(name, path)?;
        (width == Some(1)).then_some((bits / 8, bits % 8))
    }

    /// (byte offset, byte size) of a member path; not for bitfields.
    fn member(&self, name: &str, path: &[&str]) -> Option<(u32, usize)> {
        let (bits, ty, width) = self.member_bits(name, path)?;
        if bits % 8 != 0 || width.is_some() {
            return None;
        }
        Some((bits / 8, self.size_of(&ty)?))
    }

    /// (bit offset, type, bitfield width) of a member path.
    fn member_bits(&self, name: &str, path: &[&str]) -> Option<(u32, Type, Option<u32>)> {
        let mut ty = self.types_named(name).into_iter().find(|t| matches!(t, Type::Struct(_)))?;
        let mut offset_bits = 0;
        let mut width = None;
        for field in path {
            let (Type::Struct(s) | Type::Union(s)) = &ty else { return None };
            let (bits, member_ty, member_width) = self.find_member(s, field)?;
            offset_bits += bits;
            ty = member_ty;
            width = member_width;
        }
        Some((offset_bits, ty, width))
    }

    /// Finds `field` in `s` or in its anonymous members: (bit offset, type,
    /// bitfield width).
    fn find_member(&self, s: &btf_rs::Struct, field: &str) -> Option<(u32, Type, Option<u32>)> {
        for member in &s.members {
            let name = self.btf.resolve_name(member).unwrap_or_default();
            let ty = self.strip_qualifiers(self.btf.resolve_chained_type(member).ok()?);
            if name == field {
                let width = member.bitfield_size().filter(|&w| w != 0);
                return Some((member.bit_offset(), ty, width));
            }
            if name.is_empty()
                && let Type::Struct(inner) | Type::Union(inner) = &ty
                && let Some((bits, found, width)) = self.find_member(inner, field)
            {
                return Some((member.bit_offset() + bits, found, width));
            }
        }
        None
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn strip_qualifiers(&self, mut ty: Type) -> Type {
        for _ in 0..16 {
            ty = match &ty {
                Type::Typedef(t) => self.chained(t),
                Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => self.chained(t),
                Type::TypeTag(t) => self.chained(t),
                _ => return ty,
            }
            .unwrap_or(Type::Void);
        }
        ty
    }

    fn chained(&self, t: &dyn BtfType) -> Option<Type> {
        self.btf.resolve_chained_type(t).ok()
    }

    fn size_of(&self, ty: &Type) -> Option<usize> {
        match ty {
            Type::Int(i) => Some(i.size()),
            Type::Ptr(_) => Some(8),
            Type::Enum(e) => Some(e.size()),
            Type::Enum64(e) => Some(e.size()),
            Type::Struct(s) | Type::Union(s) => Some(s.size()),
            Type::Array(a) => {
                let elem = self.strip_qualifiers(self.btf.resolve_chained_type(a).ok()?);
                Some(a.len() * self.size_of(&elem)?)
            }
            _ => None,
        }
    }

    fn named_enum(&self, name: &str) -> Option<Vec<(u32, String)>> {
        self.types_named(name).into_iter().find_map(|t| match t {
            Type::Enum(e) => Some(self.enum_members(&e)),
            _ => None,
        })
    }

    fn enum_members(&self, e: &btf_rs::Enum) -> Vec<(u32, String)> {
        e.members.iter().filter_map(|m| Some((m.val(), self.btf.resolve_name(m).ok()?))).collect()
    }
}

/// A number -> type table from (number, name) pairs.
pub fn typed<T>(pairs: impl IntoIterator<Item = (u32, String)>, from_name: fn(&str) -> T) -> HashMap<u32, T> {
    pairs.into_iter().map(|(v, n)| (v, from_name(&n))).collect()
}

/// Members every program reads: without one, every record would be a read
/// error. The rest only make some keys null (listed in `limitations`).
pub fn missing_members(offsets: &KernelOffsets) -> Vec<&'static str> {
    let required = [
        ("sock_common.skc_family", offsets.skc_family),
        ("sock_common.skc_state", offsets.skc_state),
        ("sock_common.skc_daddr", offsets.skc_daddr),
        ("sock_common.skc_rcv_saddr", offsets.skc_rcv_saddr),
        ("sock_common.skc_dport", offsets.skc_dport),
        ("inet_sock.inet_sport", offsets.inet_sport),
        ("sock_common.skc_v6_daddr", offsets.skc_v6_daddr),
        ("sock_common.skc_v6_rcv_saddr", offsets.skc_v6_rcv_saddr),
        ("sock.sk_protocol", offsets.sk_protocol),
        ("sock_common.skc_net", offsets.skc_net),
        ("net.ns.inum", offsets.net_ns_inum),
        ("net.ipv4.sysctl_tcp_rfc1337", offsets.net_tcp_rfc1337),
        ("sock.sk_lock.owned", offsets.sk_lock_owned),
        ("sock.sk_err", offsets.sk_err),
        ("tcp_sock.rcv_nxt", offsets.tcp_rcv_nxt),
        ("tcp_sock.snd_nxt", offsets.tcp_snd_nxt),
        ("tcp_sock.snd_una", offsets.tcp_snd_una),
        ("sock_common.skc_tw_rcv_nxt", offsets.tw_rcv_nxt),
        ("tcp_timewait_sock.tw_ts_recent", offsets.tw_ts_recent),
        ("tcp_timewait_sock.tw_ts_recent_stamp", offsets.tw_ts_recent_stamp),
        ("sk_buff.dev", offsets.skb_dev),
        ("sk_buff.head", offsets.skb_head),
        ("sk_buff.transport_header", offsets.skb_transport_header),
        ("sk_buff.network_header", offsets.skb_network_header),
        ("net_device.nd_net", offsets.netdev_nd_net),
        ("TCP_ESTABLISHED", offsets.state_established),
        ("TCP_SYN_SENT", offsets.state_syn_sent),
        ("TCP_SYN_RECV", offsets.state_syn_recv),
        ("TCP_FIN_WAIT2", offsets.state_fin_wait2),
        ("TCP_TIME_WAIT", offsets.state_time_wait),
        ("TCP_CLOSE", offsets.state_close),
        ("TCP_CLOSING", offsets.state_closing),
        ("TCP_LISTEN", offsets.state_listen),
        ("TCP_CLOSE_WAIT", offsets.state_close_wait),
        ("TCP_LAST_ACK", offsets.state_last_ack),
    ];
    required.into_iter().filter(|(_, offset)| *offset == ABSENT).map(|(name, _)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // These read this machine's own BTF (world-readable, no root needed).
    fn host() -> Option<KernelTypes> {
        if !Path::new(DEFAULT_BTF).exists() {
            eprintln!("skipped: {DEFAULT_BTF} missing (kernel without CONFIG_DEBUG_INFO_BTF)");
            return None;
        }
        Some(KernelTypes::open(Path::new(DEFAULT_BTF)).unwrap())
    }

    #[test]
    fn tcp_states_come_from_btf_names() {
        let Some(types) = host() else { return };
        let names = types.names().unwrap();
        assert_eq!(names.tcp_state(1), TcpState::Established);
        assert_eq!(names.tcp_state_number(&TcpState::TimeWait), Some(6));
        assert_eq!(names.tcp_state_number(&TcpState::Close), Some(7));
    }

    #[test]
    fn finds_offsets_through_anonymous_members() {
        let Some(types) = host() else { return };
        let names = types.names().unwrap();
        let offsets = types.offsets(&names);
        // sock_common starts struct sock; its state sits in its first 32 bytes.
        assert!(offsets.skc_state < 32, "{offsets:?}");
        for (what, value) in [
            ("skc_family", offsets.skc_family),
            ("skc_net", offsets.skc_net),
            ("net.ns.inum", offsets.net_ns_inum),
            ("sk_lock.owned", offsets.sk_lock_owned),
            ("lsndtime", offsets.tcp_lsndtime),
            ("rcv_tstamp", offsets.tcp_rcv_tstamp),
            ("lrcvtime", offsets.icsk_lrcvtime),
            ("sk_buff.dev", offsets.skb_dev),
            ("nd_net", offsets.netdev_nd_net),
            ("sk_cgrp_data.cgroup", offsets.sk_cgroup),
            ("cgroup.kn", offsets.cgroup_kn),
            ("kernfs_node.id", offsets.kernfs_node_id),
            ("rfc1337", offsets.net_tcp_rfc1337),
            ("sk_err", offsets.sk_err),
            ("skc_flags", offsets.skc_flags),
            ("sk_dst_cache", offsets.sk_dst_cache),
            ("rt_uses_gateway", offsets.rt_uses_gateway),
            ("rt6i_flags", offsets.rt6i_flags),
            ("rtt_min", offsets.tcp_rtt_min),
            ("SOCK_KEEPOPEN", offsets.sock_flag_keepopen),
            ("keepalive_time", offsets.tcp_keepalive_time),
            ("sysctl_tcp_keepalive_time", offsets.net_tcp_keepalive_time),
            ("rcv_nxt", offsets.tcp_rcv_nxt),
            ("ts_recent", offsets.tcp_ts_recent),
            ("ts_recent_stamp", offsets.tcp_ts_recent_stamp),
            ("tstamp_ok", offsets.tcp_tstamp_ok_byte),
            ("tw_rcv_nxt", offsets.tw_rcv_nxt),
            ("tw_ts_recent", offsets.tw_ts_recent),
            ("tw_ts_recent_stamp", offsets.tw_ts_recent_stamp),
            ("skb head", offsets.skb_head),
            ("transport_header", offsets.skb_transport_header),
            ("network_header", offsets.skb_network_header),
        ] {
            assert_ne!(value, ABSENT, "{what} not found");
        }
        assert_eq!(offsets.minisock_state_mask, (1 << 6) | (1 << 12));
        assert_eq!((offsets.state_time_wait, offsets.state_fin_wait2, offsets.state_close), (6, 5, 7));
        assert!(offsets.tcp_tstamp_ok_bit < 8);
    }

    #[test]
    fn timewait_verdict_and_drop_reason_names() {
        let Some(types) = host() else { return };
        let names = types.names().unwrap();
        assert_eq!(names.tw_status(3), TwStatus::Syn);
        assert_eq!(names.tw_status(2), TwStatus::Ack);
        assert!(names.drop_reasons.values().any(|n| *n == DropReason::NotSpecified));
        assert!(missing_members(&types.offsets(&names)).is_empty());
    }

    #[test]
    fn prototype_of_the_timewait_handler() {
        let Some(types) = host() else { return };
        let params = types.function_params("tcp_timewait_state_process").unwrap();
        assert_eq!(params[..3], ["tw", "skb", "th"]);
        assert!(types.function_params("no_such_function_here").is_none());
    }

    #[test]
    fn a_missing_member_or_wrong_size_is_absent() {
        let Some(types) = host() else { return };
        assert_eq!(types.offset_of("tcp_sock", &["no_such_member"], &[4]), ABSENT);
        assert_eq!(types.offset_of("no_such_struct", &["x"], &[4]), ABSENT);
        assert_eq!(types.offset_of("tcp_sock", &["lsndtime"], &[8]), ABSENT);
        // A bitfield has no byte offset of its own.
        assert_eq!(types.offset_of("tcp_sock", &["rx_opt", "tstamp_ok"], &[1]), ABSENT);
    }

    #[test]
    fn a_member_missing_from_btf_is_named() {
        let Some(types) = host() else { return };
        let mut offsets = types.offsets(&types.names().unwrap());
        offsets.skc_state = ABSENT;
        offsets.tcp_snd_una = ABSENT;
        assert_eq!(missing_members(&offsets), ["sock_common.skc_state", "tcp_sock.snd_una"]);
        // Optional members only null some keys.
        offsets = types.offsets(&types.names().unwrap());
        offsets.tcp_lsndtime = ABSENT;
        assert!(missing_members(&offsets).is_empty());
    }

    #[test]
    fn missing_btf_file_says_how_to_fix_it() {
        let err = KernelTypes::open(Path::new("/nonexistent/vmlinux")).err().unwrap();
        assert!(err.to_string().contains("CONFIG_DEBUG_INFO_BTF"), "{err}");
    }
}
