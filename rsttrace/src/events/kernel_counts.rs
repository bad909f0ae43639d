//! What the kernel counted instead of recording it one by one: reset
//! storms (past the first `STORM_INDIVIDUAL` per key and interval, the
//! reset programs only count, see `StormKey`) and accepted TIME_WAIT reuse
//! (past the first per peer, CPU and interval, see `ReuseKey`). Every
//! interval the daemon switches the programs to the other generation of
//! both tables, and reads (and empties) the one that stopped counting an
//! interval earlier, when no program can still be changing it.

use anyhow::Context as _;
use aya::{
    Ebpf, Pod,
    maps::{Array, MapData, PerCpuHashMap, PerCpuValues},
};
use rsttrace_common::{
    reset::{STORM_HAS_CGROUP, STORM_HAS_TTL, STORM_INDIVIDUAL, STORM_INTERVAL_NS, StormCount, StormKey},
    timewait::{ReuseCount, ReuseKey},
};

use super::{Event, decode::Decoder};

/// One key's resets past the individual ones, summed over the CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    pub count: u64,
    /// The earliest first counted reset of any CPU, and its port (the one
    /// the key leaves 0) and TTL (when known).
    pub first_ns: u64,
    pub port: u16,
    pub ttl: Option<u8>,
    /// The cgroup that owns the socket of the first counted one, when read.
    pub cgroup_id: Option<u64>,
}

/// What one key's per-CPU values say: None when every reset was recorded
/// one by one.
pub fn counted(per_cpu: &[StormCount]) -> Option<Counted> {
    let counted_on = |c: &StormCount| c.seen.saturating_sub(STORM_INDIVIDUAL);
    let count: u64 = per_cpu.iter().map(counted_on).sum();
    let first = per_cpu.iter().filter(|c| counted_on(c) > 0).min_by_key(|c| c.first_ns)?;
    Some(Counted {
        count,
        first_ns: first.first_ns,
        port: first.port,
        ttl: (first.flags & STORM_HAS_TTL != 0).then_some(first.ttl),
        cgroup_id: (first.flags & STORM_HAS_CGROUP != 0).then_some(first.cgroup_id),
    })
}

/// One peer's accepted reuse in an interval, summed over the CPUs: the
/// earliest first record and the count. None when no CPU counted any.
pub fn reused(per_cpu: &[ReuseCount]) -> Option<(&ReuseCount, u64)> {
    let first = per_cpu.iter().filter(|c| c.count > 0).min_by_key(|c| c.first.header.ktime_ns)?;
    Some((first, per_cpu.iter().map(|c| c.count).sum()))
}

pub struct KernelCounts {
    storms: PerCpuHashMap<MapData, StormKey, StormCount>,
    reuse: PerCpuHashMap<MapData, ReuseKey, ReuseCount>,
    generation: Array<MapData, u32>,
    /// The generation the programs count in, and since when (monotonic ns).
    active: u8,
    since_ns: u64,
    /// When the other generation stopped counting, and how long it counted.
    resting_interval_ms: u64,
}

impl KernelCounts {
    pub fn take(ebpf: &mut Ebpf, now_ns: u64) -> anyhow::Result<Self> {
        let mut map = |name: &str| ebpf.take_map(name).with_context(|| format!("eBPF object has no {name} map"));
        let storms = PerCpuHashMap::try_from(map("STORM")?)?;
        let reuse = PerCpuHashMap::try_from(map("REUSE")?)?;
        let generation = Array::try_from(map("COUNT_GENERATION")?)?;
        Ok(KernelCounts { storms, reuse, generation, active: 0, since_ns: now_ns, resting_interval_ms: 0 })
    }

    /// Once per interval: the counts of the generation that has rested for
    /// an interval, as events; then the programs count in it again.
    pub fn tick(&mut self, now_ns: u64, decoder: &Decoder) -> Vec<Event> {
        if now_ns.saturating_sub(self.since_ns) < STORM_INTERVAL_NS {
            return Vec::new();
        }
        let resting = self.active ^ 1;
        let events = self.drain(resting, self.resting_interval_ms, decoder);
        self.switch(resting, now_ns);
        events
    }

    /// At the end of a run: both generations. The programs are switched
    /// away from the active one first; one still running on another CPU
    /// finishes within microseconds, long before the table is read.
    pub fn finish(&mut self, now_ns: u64, decoder: &Decoder) -> Vec<Event> {
        let (active, counted_ms) = (self.active, now_ns.saturating_sub(self.since_ns) / 1_000_000);
        let mut events = self.drain(active ^ 1, self.resting_interval_ms, decoder);
        self.switch(active ^ 1, now_ns);
        std::thread::sleep(std::time::Duration::from_millis(10));
        events.extend(self.drain(active, counted_ms, decoder));
        events
    }

    fn switch(&mut self, generation: u8, now_ns: u64) {
        if let Err(e) = self.generation.set(0, u32::from(generation), 0) {
            log::warn!("cannot switch the generation of the kernel's counts: {e}");
            return;
        }
        self.resting_interval_ms = now_ns.saturating_sub(self.since_ns) / 1_000_000;
        self.active = generation;
        self.since_ns = now_ns;
    }

    fn drain(&mut self, generation: u8, interval_ms: u64, decoder: &Decoder) -> Vec<Event> {
        let mut events: Vec<Event> = take_generation(&mut self.storms, |k| k.generation == generation, "storm")
            .into_iter()
            .filter_map(|(key, values)| counted(&values).map(|c| decoder.storm(&key, &c, interval_ms)))
            .collect();
        let reuse = take_generation(&mut self.reuse, |k| k.generation == u32::from(generation), "reuse");
        events.extend(
            reuse
                .into_iter()
                .filter_map(|(_, values)| reused(&values).map(|(f, count)| decoder.reuse(&f.first, count))),
        );
        events.sort_by_key(Event::ktime_ns);
        events
    }
}

/// Every key of one generation of a per-CPU table, with its values, taken
/// out of the table; what cannot be read or removed is said in the log.
fn take_generation<K: Pod, V: Pod>(
    table: &mut PerCpuHashMap<MapData, K, V>,
    in_generation: impl Fn(&K) -> bool,
    name: &str,
) -> Vec<(K, PerCpuValues<V>)> {
    let keys: Vec<K> = table.keys().filter_map(Result::ok).filter(|k| in_generation(k)).collect();
    let mut taken = Vec::new();
    for key in keys {
        match table.get(&key, 0) {
            Ok(values) => taken.push((key, values)),
            Err(e) => log::warn!("cannot read the {name} table: {e}"),
        }
        if let Err(e) = table.remove(&key) {
            log::warn!("cannot empty the {name} table: {e}");
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(seen: u64, first_ns: u64, port: u16) -> StormCount {
        StormCount { seen, first_ns, port, ..Default::default() }
    }

    fn reuse(count: u64, first_ns: u64) -> ReuseCount {
        let mut r = ReuseCount { count, ..Default::default() };
        r.first.header.ktime_ns = first_ns;
        r
    }

    #[test]
    fn reuse_sums_every_cpu_with_the_earliest_first() {
        assert!(reused(&[reuse(0, 0), reuse(0, 0)]).is_none(), "no CPU counted");
        let values = [reuse(4, 900), reuse(0, 0), reuse(2, 700)];
        let (first, count) = reused(&values).unwrap();
        assert_eq!((first.first.header.ktime_ns, count), (700, 6));
    }

    #[test]
    fn counts_past_the_individual_ones_on_every_cpu() {
        assert_eq!(counted(&[cpu(STORM_INDIVIDUAL, 0, 0), cpu(3, 0, 0)]), None, "all recorded one by one");
        let c = counted(&[cpu(STORM_INDIVIDUAL + 5, 900, 41000), cpu(STORM_INDIVIDUAL + 2, 700, 42000), cpu(1, 0, 0)])
            .unwrap();
        assert_eq!(
            (c.count, c.first_ns, c.port, c.ttl, c.cgroup_id),
            (7, 700, 42000, None, None),
            "the earliest first"
        );
        let owned = StormCount { flags: STORM_HAS_CGROUP, cgroup_id: 4242, ..cpu(STORM_INDIVIDUAL + 1, 500, 43000) };
        let c = counted(&[owned, cpu(STORM_INDIVIDUAL + 2, 900, 41000)]).unwrap();
        assert_eq!((c.count, c.cgroup_id), (3, Some(4242)), "the first one's owner");
    }
}
