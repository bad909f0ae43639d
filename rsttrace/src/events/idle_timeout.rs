//! The idle timeout of a device in between, inferred: when RSTs forged by a
//! middlebox keep arriving from one peer network after similar silences,
//! the device forgets connections idle for at most the shortest of them.

use std::{collections::HashMap, net::IpAddr, time::SystemTime};

use ipnet::IpNet;

use super::{FourTuple, Keepalive, Origin, Reset};

/// Peers in one network are usually behind the same device.
const V4_PREFIX: u8 = 24;
const V6_PREFIX: u8 = 64;

/// A lone forged RST is kept this long waiting for a second one.
const KEEP_ALONE_NS: u64 = 600_000_000_000;

/// Forged RSTs from one peer network, after what silences.
#[derive(Clone, Debug, PartialEq)]
pub struct IdleTimeout {
    /// When the last of them came.
    pub time: SystemTime,
    /// The last one's 4-tuple (what filters look at).
    pub tuple: FourTuple,
    pub network: IpNet,
    pub count: u64,
    pub silence_min_ms: u64,
    pub silence_max_ms: u64,
    /// From the first to the last of them.
    pub interval_ms: u64,
    /// The last socket's keepalive setting.
    pub keepalive: Option<Keepalive>,
    first_ktime_ns: u64,
    pub(super) last_ktime_ns: u64,
}

impl IdleTimeout {
    /// The device forgot connections idle for at most this long.
    pub fn timeout_s(&self) -> u64 {
        self.silence_min_ms / 1000
    }

    pub fn advice(&self) -> String {
        let timeout = self.timeout_s();
        let keepalive = match self.keepalive {
            Some(Keepalive::After(ms)) if ms / 1000 < timeout => format!(
                "keepalive on the last socket probes after {} s, below it, yet connections were reset: check that it is on for every connection",
                ms / 1000
            ),
            Some(Keepalive::After(ms)) => {
                format!("keepalive on the last socket probes only after {} s: lower TCP_KEEPIDLE", ms / 1000)
            }
            Some(Keepalive::Off) => "keepalive was off on the last socket: enable SO_KEEPALIVE".to_string(),
            None => "enable SO_KEEPALIVE".to_string(),
        };
        format!(
            "A device between this host and {} forgets connections idle for {timeout} s or less: keep them busy below that ({keepalive} with TCP_KEEPIDLE under {timeout} s, or application keepalives), or raise the device's idle timeout",
            self.network
        )
    }
}

/// Forged RSTs per (namespace, peer network) since they were last reported.
#[derive(Default)]
pub struct IdleTimeouts {
    groups: HashMap<(Option<u32>, IpNet), IdleTimeout>,
}

impl IdleTimeouts {
    /// Takes note of a received reset that a middlebox sent after a silence.
    pub fn push(&mut self, r: &Reset) {
        let (Some((Origin::Middlebox, _)), Some(silence)) = (r.origin(), r.peer_silent_ms) else { return };
        let network = network_of(r.tuple.remote.ip());
        let group = self.groups.entry((r.tuple.netns, network)).or_insert_with(|| IdleTimeout {
            time: r.time,
            tuple: r.tuple,
            network,
            count: 0,
            silence_min_ms: silence,
            silence_max_ms: silence,
            interval_ms: 0,
            keepalive: r.keepalive,
            first_ktime_ns: r.ktime_ns,
            last_ktime_ns: r.ktime_ns,
        });
        group.count += 1;
        group.silence_min_ms = group.silence_min_ms.min(silence);
        group.silence_max_ms = group.silence_max_ms.max(silence);
        group.time = r.time;
        group.tuple = r.tuple;
        group.keepalive = r.keepalive;
        group.first_ktime_ns = group.first_ktime_ns.min(r.ktime_ns);
        group.last_ktime_ns = group.last_ktime_ns.max(r.ktime_ns);
        group.interval_ms = (group.last_ktime_ns - group.first_ktime_ns) / 1_000_000;
    }

    /// Groups of several resets whose interval is over (all of them when
    /// `all`), oldest first; lone resets wait for a second one, for a while.
    pub fn take(&mut self, now_ns: u64, interval_ns: u64, all: bool) -> Vec<IdleTimeout> {
        let mut ready: Vec<IdleTimeout> = Vec::new();
        self.groups.retain(|_, group| {
            let age = now_ns.saturating_sub(group.first_ktime_ns);
            if group.count >= 2 && (all || age >= interval_ns) {
                ready.push(group.clone());
                return false;
            }
            !all && age < KEEP_ALONE_NS
        });
        ready.sort_by_key(|g| g.first_ktime_ns);
        ready
    }
}

fn network_of(ip: IpAddr) -> IpNet {
    let prefix = if ip.is_ipv4() { V4_PREFIX } else { V6_PREFIX };
    IpNet::new(ip, prefix).expect("a valid prefix length").trunc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Direction, Path, Rtt};

    const S: u64 = 1_000_000_000;

    fn forged(peer: &str, silence_ms: u64, at_s: u64) -> Reset {
        Reset {
            ktime_ns: at_s * S,
            tuple: FourTuple {
                local: "10.90.2.1:8080".parse().unwrap(),
                remote: format!("{peer}:40000").parse().unwrap(),
                netns: Some(7),
            },
            idle_ms: Some(0),
            peer_silent_ms: Some(silence_ms),
            keepalive: Some(Keepalive::Off),
            path: Path { rtt: Some(Rtt { min_us: 40_000, since_data_max_us: 4_000 }), ..Default::default() },
            ..Reset::example(Direction::Received)
        }
    }

    #[test]
    fn several_forged_resets_from_one_network_give_one_timeout() {
        let mut t = IdleTimeouts::default();
        t.push(&forged("10.90.1.1", 5_200, 10));
        t.push(&forged("10.90.1.7", 3_600, 12));
        t.push(&forged("10.90.1.9", 4_100, 13));
        t.push(&forged("10.91.0.1", 9_000, 13));
        assert!(t.take(15 * S, 10 * S, false).is_empty(), "the interval is not over");
        let found = t.take(20 * S, 10 * S, false);
        assert_eq!(found.len(), 1, "the lone reset from 10.91.0.0/24 waits: {found:?}");
        let g = &found[0];
        assert_eq!(g.network.to_string(), "10.90.1.0/24");
        assert_eq!((g.count, g.silence_min_ms, g.silence_max_ms, g.interval_ms), (3, 3_600, 5_200, 3_000));
        assert_eq!(g.timeout_s(), 3);
        assert!(g.advice().contains("idle for 3 s or less"), "{}", g.advice());
        assert!(t.take(1000 * S, 10 * S, true).is_empty(), "the lone one never makes a record");
    }

    #[test]
    fn resets_from_the_peer_itself_are_not_counted() {
        let mut t = IdleTimeouts::default();
        for at in 0..5 {
            let mut r = forged("10.90.1.1", 5_000, at);
            r.path = Path::default();
            t.push(&r);
        }
        assert!(t.take(100 * S, 10 * S, true).is_empty());
    }

    #[test]
    fn ipv6_peers_group_by_64() {
        let mut t = IdleTimeouts::default();
        t.push(&forged("[fd90:1::1]", 4_000, 1));
        t.push(&forged("[fd90:1::2:3]", 4_500, 2));
        let found = t.take(100 * S, 10 * S, false);
        assert_eq!(found[0].network.to_string(), "fd90:1::/64");
    }
}
