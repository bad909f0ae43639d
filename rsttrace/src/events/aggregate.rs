//! Many events of one key written as one record per interval: harmless
//! reuse of a TIME_WAIT 4-tuple (per peer) and received RSTs the kernel
//! discarded (per peer, outcome, drop reason and state). One interval for
//! both, so that their records come out together.

use std::{
    collections::{HashMap, hash_map::Entry},
    hash::Hash,
};

use super::{Reset, collision::Collision};

/// A record that can stand for several events: the first one's fields,
/// their count, the interval they fell in.
pub trait Aggregated {
    fn count_mut(&mut self) -> &mut u64;
    fn interval_ms_mut(&mut self) -> &mut Option<u64>;
}

impl Aggregated for Collision {
    fn count_mut(&mut self) -> &mut u64 {
        &mut self.count
    }

    fn interval_ms_mut(&mut self) -> &mut Option<u64> {
        &mut self.interval_ms
    }
}

impl Aggregated for Reset {
    fn count_mut(&mut self) -> &mut u64 {
        &mut self.count
    }

    fn interval_ms_mut(&mut self) -> &mut Option<u64> {
        &mut self.interval_ms
    }
}

/// The first record of each key, counting the others.
pub struct Aggregator<K, V> {
    first: HashMap<K, V>,
}

impl<K, V> Default for Aggregator<K, V> {
    fn default() -> Self {
        Self { first: HashMap::new() }
    }
}

impl<K: Eq + Hash, V: Aggregated> Aggregator<K, V> {
    /// Adds `value`, which stands for its own count of events.
    pub fn add(&mut self, key: K, mut value: V) {
        let count = *value.count_mut();
        match self.first.entry(key) {
            Entry::Occupied(mut first) => *first.get_mut().count_mut() += count,
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
        }
    }

    /// Every key's record, covering `interval_ms`; empty afterwards.
    pub fn drain(&mut self, interval_ms: u64) -> impl Iterator<Item = V> + '_ {
        self.first.drain().map(move |(_, mut value)| {
            *value.interval_ms_mut() = Some(interval_ms);
            value
        })
    }
}

/// The aggregation interval: it begins with its first event and ends
/// `length_ns` later (or at the end of the run).
#[derive(Default)]
pub struct Interval {
    start_ns: Option<u64>,
}

impl Interval {
    /// An event at `ktime_ns` to aggregate: begins the interval if none is open.
    pub fn note(&mut self, ktime_ns: u64) {
        self.start_ns.get_or_insert(ktime_ns);
    }

    pub fn is_over(&self, now_ns: u64, length_ns: u64) -> bool {
        self.start_ns.is_some_and(|start| now_ns.saturating_sub(start) >= length_ns)
    }

    /// Closes it: how long it lasted, in milliseconds.
    pub fn close(&mut self, now_ns: u64) -> u64 {
        let start = self.start_ns.take().unwrap_or(now_ns);
        now_ns.saturating_sub(start) / 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Direction;

    #[test]
    fn the_first_of_a_key_counts_the_others() {
        let mut aggregator = Aggregator::default();
        for (key, port, count) in [("a", 1, 1), ("b", 2, 1), ("a", 3, 5)] {
            let mut reset = Reset::example(Direction::Received);
            reset.tuple.remote.set_port(port);
            reset.count = count;
            aggregator.add(key, reset);
        }
        let mut out: Vec<Reset> = aggregator.drain(10_000).collect();
        out.sort_by_key(|r| r.tuple.remote.port());
        let summary: Vec<(u16, u64, Option<u64>)> =
            out.iter().map(|r| (r.tuple.remote.port(), r.count, r.interval_ms)).collect();
        assert_eq!(summary, [(1, 6, Some(10_000)), (2, 1, Some(10_000))]);
        assert_eq!(aggregator.drain(1).count(), 0, "drained");
    }

    #[test]
    fn an_interval_begins_with_its_first_event() {
        let mut interval = Interval::default();
        assert!(!interval.is_over(u64::MAX, 1), "none open");
        interval.note(1_000_000_000);
        interval.note(5_000_000_000);
        assert!(!interval.is_over(10_999_999_999, 10_000_000_000));
        assert!(interval.is_over(11_000_000_000, 10_000_000_000));
        assert_eq!(interval.close(11_000_000_000), 10_000);
        assert!(!interval.is_over(u64::MAX, 1), "closed");
    }
}
