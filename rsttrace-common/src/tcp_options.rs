//! The TCP option list of a segment, as the kernel's `tcp_parse_options`
//! reads it; pure, so that it is tested here and run in the eBPF programs.

/// Option bytes a TCP header can carry at most.
pub const MAX_OPTIONS_LEN: usize = 40;

const EOL: u8 = 0;
const NOP: u8 = 1;
const TIMESTAMP: u8 = 8;
const TIMESTAMP_LEN: usize = 10;

/// The TSval of the timestamp option among the first `len` bytes of
/// `options`, or None without one. A malformed list ends the parse, as in
/// the kernel, which then sees no timestamp either.
#[inline(always)]
pub fn timestamp_tsval(options: &[u8; MAX_OPTIONS_LEN], len: usize) -> Option<u32> {
    let mut i = 0usize;
    // Bounded for the verifier: a header carries at most a handful.
    for _ in 0..16 {
        if i >= len {
            return None;
        }
        match *options.get(i)? {
            EOL => return None,
            NOP => i += 1,
            kind => {
                let size = *options.get(i + 1)? as usize;
                if size < 2 || i + size > len {
                    return None;
                }
                if kind == TIMESTAMP && size == TIMESTAMP_LEN {
                    return Some(u32::from_be_bytes([
                        *options.get(i + 2)?,
                        *options.get(i + 3)?,
                        *options.get(i + 4)?,
                        *options.get(i + 5)?,
                    ]));
                }
                i += size;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
