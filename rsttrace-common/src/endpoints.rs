//! The two ends of a TCP connection as this host sees them.

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// "Local" is this host, "remote" the peer, whatever the direction of the
/// segment. IPv4 addresses sit in the first 4 bytes; IPv4 seen through a
/// dual-stack socket is stored as IPv4 too, so keys from sockets and from
/// packets agree.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Host byte order.
    pub local_port: u16,
    pub remote_port: u16,
    pub _pad: u16,
}

impl Endpoints {
    /// Rewrites a v4-mapped IPv6 pair (`::ffff:a.b.c.d`) as IPv4.
    pub fn unmap_v4(&mut self) {
        if self.family == AF_INET6 && is_v4_mapped(&self.local_addr) && is_v4_mapped(&self.remote_addr) {
            self.family = AF_INET;
            for addr in [&mut self.local_addr, &mut self.remote_addr] {
                let v4 = [addr[12], addr[13], addr[14], addr[15]];
                *addr = [0; 16];
                addr[..4].copy_from_slice(&v4);
            }
        }
    }
}

fn is_v4_mapped(addr: &[u8; 16]) -> bool {
    addr[..10].iter().all(|&b| b == 0) && addr[10] == 0xff && addr[11] == 0xff
}
