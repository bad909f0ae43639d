//! `--port` and `--addr` filters: an event passes when either endpoint
//! matches one of the ports (if any are given) and one of the networks (if
//! any are given).

use std::net::SocketAddr;

use ipnet::IpNet;

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub ports: Vec<u16>,
    pub networks: Vec<IpNet>,
}

impl Filter {
    pub fn matches(&self, local: &SocketAddr, remote: &SocketAddr) -> bool {
        let endpoints = [local, remote];
        let port_ok = self.ports.is_empty() || endpoints.iter().any(|e| self.ports.contains(&e.port()));
        let addr_ok =
            self.networks.is_empty() || endpoints.iter().any(|e| self.networks.iter().any(|n| n.contains(&e.ip())));
        port_ok && addr_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_filter_keeps_everything() {
        assert!(Filter::default().matches(&ep("10.0.0.2:80"), &ep("10.0.0.1:5555")));
    }

    #[test]
    fn port_matches_either_endpoint() {
        let f = Filter { ports: vec![80, 443], ..Default::default() };
        assert!(f.matches(&ep("10.0.0.2:80"), &ep("10.0.0.1:5555")));
        assert!(f.matches(&ep("10.0.0.1:5555"), &ep("10.0.0.2:443")));
        assert!(!f.matches(&ep("10.0.0.1:5555"), &ep("10.0.0.2:8080")));
    }

    #[test]
    fn network_matches_either_endpoint_and_family() {
        let f = Filter {
            networks: vec!["10.77.0.0/24".parse().unwrap(), "2001:db8::/32".parse().unwrap()],
            ..Default::default()
        };
        assert!(f.matches(&ep("192.168.1.1:1"), &ep("10.77.0.9:2")));
        assert!(f.matches(&ep("[2001:db8::5]:1"), &ep("[fe80::1]:2")));
        assert!(!f.matches(&ep("10.78.0.1:1"), &ep("[2001:db9::1]:2")));
    }

    #[test]
    fn port_and_network_must_both_match() {
        let f = Filter { ports: vec![80], networks: vec!["10.0.0.0/8".parse().unwrap()] };
        assert!(f.matches(&ep("10.0.0.2:80"), &ep("192.0.2.1:5555")));
        assert!(!f.matches(&ep("10.0.0.2:81"), &ep("192.0.2.1:5555")));
        assert!(!f.matches(&ep("172.16.0.2:80"), &ep("192.0.2.1:5555")));
    }
}
