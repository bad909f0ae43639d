//! The TCP option list of a segment, as the kernel's `tcp_parse_options`
//! reads it; pure, so that it is tested here and run in the eBPF programs.

/// Option bytes a TCP header can carry at most.
pub const MAX_OPTIONS_LEN: usize = 40;

const EOL: u8 = 0;
const NOP: u8 = 1;
const TIMESTAMP: u8 = 8;
const TIMESTAMP_LEN: usize = 10;

/// What a segment's option list says of the timestamp option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timestamp {
    /// The options could not be read: unknown, never "no timestamps".
    Unknown,
    /// Not among the options (or the segment has none).
    Absent,
    /// Present, with this TSval.
    Tsval(u32),
}

impl Timestamp {
    /// Whether the options were read (`tsval` is only meaningful then).
    #[inline(always)]
    pub fn known(self) -> bool {
        !matches!(self, Timestamp::Unknown)
    }

    #[inline(always)]
    pub fn tsval(self) -> Option<u32> {
        match self {
            Timestamp::Tsval(tsval) => Some(tsval),
            Timestamp::Unknown | Timestamp::Absent => None,
        }
    }
}

/// The timestamp option of a segment whose header announces `len` option
/// bytes. `read` reads the option bytes into the buffer it is given and
/// says whether it could; it is called only when there are any, and its
/// failure makes the answer `Unknown`, never `Absent`.
#[inline(always)]
pub fn timestamp(len: usize, read: impl FnOnce(&mut [u8; MAX_OPTIONS_LEN]) -> bool) -> Timestamp {
    if len == 0 {
        return Timestamp::Absent;
    }
    // Read in place into zeroes: the eBPF verifier allows the parse's reads
    // at variable offsets only where every byte is known written, which a
    // copy of a read result need not be.
    let mut options = [0u8; MAX_OPTIONS_LEN];
    if !read(&mut options) {
        return Timestamp::Unknown;
    }
    match timestamp_tsval(&options, len) {
        Some(tsval) => Timestamp::Tsval(tsval),
        None => Timestamp::Absent,
    }
}

/// The TSval of the timestamp option among the first `len` bytes of
/// `options`, or None without one. A malformed list ends the parse, as in
/// the kernel, which then sees no timestamp either.
#[inline(always)]
pub fn timestamp_tsval(options: &[u8; MAX_OPTIONS_LEN], len: usize) -> Option<u32> {
    // One step per byte of the option space, so that any number of NOPs is
    // passed; `skip` counts the bytes left of the option being passed over.
    // Measured on 6.18 (the kfree_skb program, verified_insns): a step per
    // option costs the verifier 87k instructions bounded at 16 steps (which
    // missed a timestamp after 16 NOPs), 755k at 40; a step per byte 45k.
    let mut skip = 0usize;
    for at in 0..MAX_OPTIONS_LEN {
        if at >= len {
            return None;
        }
        if skip > 0 {
            skip -= 1;
            continue;
        }
        match options[at] {
            EOL => return None,
            NOP => {}
            kind => {
                let size = *options.get(at + 1)? as usize;
                if size < 2 || at + size > len {
                    return None;
                }
                if kind == TIMESTAMP && size == TIMESTAMP_LEN {
                    return Some(u32::from_be_bytes([
                        *options.get(at + 2)?,
                        *options.get(at + 3)?,
                        *options.get(at + 4)?,
                        *options.get(at + 5)?,
                    ]));
                }
                skip = size - 1;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's parse, unbounded: one step per option.
    fn reference(options: &[u8; MAX_OPTIONS_LEN], len: usize) -> Option<u32> {
        let mut i = 0usize;
        while i < len {
            match options[i] {
                EOL => return None,
                NOP => i += 1,
                kind => {
                    let size = *options.get(i + 1)? as usize;
                    if size < 2 || i + size > len {
                        return None;
                    }
                    if kind == TIMESTAMP && size == TIMESTAMP_LEN {
                        return Some(u32::from_be_bytes(options[i + 2..i + 6].try_into().unwrap()));
                    }
                    i += size;
                }
            }
        }
        None
    }

    #[test]
    fn parses_as_the_kernel_does() {
        // Option lists made of NOPs, EOLs, timestamps and other options of
        // random sizes, most well-formed, some not.
        let mut state = 0x2545f4914f6cdd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut found = 0;
        for _ in 0..200_000 {
            let mut o = [0u8; MAX_OPTIONS_LEN];
            let mut at = 0;
            while at < MAX_OPTIONS_LEN {
                let (kind, size) = match next(10) {
                    0..=3 => (NOP, 1),
                    4 => (EOL, 1),
                    5 | 6 => (TIMESTAMP, TIMESTAMP_LEN),
                    7 => (2 + next(30) as u8, next(12) as usize),
                    _ => (2 + next(30) as u8, 2 + next(8) as usize),
                };
                o[at] = kind;
                if size > 1 && at + 1 < MAX_OPTIONS_LEN {
                    o[at + 1] = size as u8;
                    for b in o.iter_mut().take((at + size).min(MAX_OPTIONS_LEN)).skip(at + 2) {
                        *b = next(256) as u8;
                    }
                }
                at += size.max(1);
            }
            let len = 4 * next(11) as usize;
            let want = reference(&o, len);
            found += want.is_some() as u32;
            assert_eq!(timestamp_tsval(&o, len), want, "{o:?} len {len}");
        }
        assert!(found > 10_000, "timestamps found: {found}");
    }

    fn options(bytes: &[u8]) -> ([u8; MAX_OPTIONS_LEN], usize) {
        let mut o = [0u8; MAX_OPTIONS_LEN];
        o[..bytes.len()].copy_from_slice(bytes);
        (o, bytes.len())
    }

    #[test]
    fn linux_syn_options() {
        // MSS, SACK permitted, timestamps, NOP, window scale: as Linux sends.
        let (o, len) = options(&[2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0, 1, 3, 3, 7]);
        assert_eq!(timestamp_tsval(&o, len), Some(12345));
    }

    #[test]
    fn padded_with_nops() {
        let (o, len) = options(&[1, 1, 8, 10, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]);
        assert_eq!(timestamp_tsval(&o, len), Some(0xdeadbeef));
    }

    #[test]
    fn a_timestamp_after_any_number_of_nops() {
        // The last place a 10-byte option fits: 30 NOPs before it.
        for nops in [15, 16, 29, 30] {
            let mut bytes = vec![1u8; nops];
            bytes.extend([8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0]);
            let (o, len) = options(&bytes);
            assert_eq!(timestamp_tsval(&o, len), Some(12345), "{nops} NOPs");
        }
        // 40 bytes of NOPs: the end of the option space, no timestamp.
        assert_eq!(timestamp_tsval(&[1; MAX_OPTIONS_LEN], MAX_OPTIONS_LEN), None);
    }

    #[test]
    fn unreadable_options_are_unknown_never_absent() {
        let (o, len) = options(&[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0]);
        assert_eq!(timestamp(len, |_| false), Timestamp::Unknown);
        assert!(!timestamp(len, |_| false).known());
        assert_eq!(timestamp(len, |_| false).tsval(), None);
        assert_eq!(
            timestamp(len, |b| {
                *b = o;
                true
            }),
            Timestamp::Tsval(7)
        );
        let (o, len) = options(&[2, 4, 5, 0xb4]);
        assert_eq!(
            timestamp(len, |b| {
                *b = o;
                true
            }),
            Timestamp::Absent
        );
        assert!(
            timestamp(len, |b| {
                *b = o;
                true
            })
            .known()
        );
        // No options: nothing to read, and known to carry no timestamp.
        assert_eq!(timestamp(0, |_| panic!("read without options")), Timestamp::Absent);
    }

    #[test]
    fn no_timestamp_option() {
        let (o, len) = options(&[2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 0, 0]);
        assert_eq!(timestamp_tsval(&o, len), None);
        assert_eq!(timestamp_tsval(&[0; MAX_OPTIONS_LEN], 0), None);
    }

    #[test]
    fn end_of_list_stops_the_parse() {
        let (o, len) = options(&[0, 0, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(timestamp_tsval(&o, len), None);
    }

    #[test]
    fn malformed_or_truncated_lists_end_the_parse() {
        // A length below 2 (the kernel's "silly option").
        let (o, len) = options(&[5, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(timestamp_tsval(&o, len), None);
        // The timestamp runs past the header's option length.
        let (o, _) = options(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(timestamp_tsval(&o, 8), None);
        // A timestamp option of the wrong size is skipped, not read.
        let (o, len) = options(&[8, 6, 0, 0, 0, 1, 1, 1]);
        assert_eq!(timestamp_tsval(&o, len), None);
    }
}
