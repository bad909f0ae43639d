//! What the kernel counted instead of recording it one by one: reset
//! storms (past the first `STORM_INDIVIDUAL` per key and interval, the
//! reset programs only count, see `StormKey`) and accepted TIME_WAIT reuse
//! (past the first per peer, CPU and interval, see `ReuseKey`). Every
//! interval the daemon switches the programs to the other generation of
//! both tables, and reads (and empties) the one that stopped counting an
//! interval earlier, when no program can still be changing it. The
//! decoder makes events of what was read.

use anyhow::Context as _;
use aya::{
    Ebpf, Pod,
    maps::{Array, MapData, PerCpuHashMap, PerCpuValues},
};
use rsttrace_common::{
    reset::{STORM_INTERVAL_NS, StormCount, StormKey},
    timewait::{ReuseCount, ReuseKey},
};

use super::{Event, decode::Decoder};

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
            .filter_map(|(key, values)| decoder.storm(&key, &values, interval_ms))
            .collect();
        let reuse = take_generation(&mut self.reuse, |k| k.generation == u32::from(generation), "reuse");
        events.extend(reuse.into_iter().filter_map(|(_, values)| decoder.reuse(&values)));
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
