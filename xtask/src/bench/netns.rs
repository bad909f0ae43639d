//! The bench's own network namespace, and the kernel's TCP counters inside
//! it (/proc/net/snmp, /proc/net/netstat, /proc/net/sockstat as the
//! namespace sees them).

use std::{collections::BTreeMap, fs::File, os::fd::AsRawFd as _, os::unix::fs::MetadataExt as _, process::Command};

use anyhow::{Context as _, bail};

// rsttrace's parser of these files; the bench reads only the counter tables.
#[allow(dead_code)]
#[path = "../../../rsttrace/src/procfs.rs"]
mod procfs;

pub struct Netns {
    pub name: String,
    /// The namespace's inode: what rsttrace prints as `netns`.
    pub inode: u64,
    file: File,
}

impl Netns {
    /// `ip netns add NAME`, loopback up.
    pub fn create(name: &str) -> anyhow::Result<Netns> {
        // A namespace left over by an interrupted run.
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(std::process::Stdio::null()).status();
        ip(&["netns", "add", name])?;
        let netns = (|| {
            ip(&["-n", name, "link", "set", "lo", "up"])?;
            let path = format!("/run/netns/{name}");
            let file = File::open(&path).with_context(|| format!("cannot open {path}"))?;
            let inode = file.metadata()?.ino();
            Ok(Netns { name: name.to_string(), inode, file })
        })();
        if netns.is_err() {
            let _ = ip(&["netns", "del", name]);
        }
        netns
    }

    /// `sysctl -w KEY=VALUE` inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.name, "sysctl", "-qw", &format!("{key}={value}")])
            .status()
            .context("cannot run ip netns exec sysctl")?;
        if !status.success() {
            bail!("sysctl {key}={value} failed in namespace {}", self.name);
        }
        Ok(())
    }

    /// Moves the calling thread into the namespace: the sockets it creates
    /// from now on live there.
    pub fn enter(&self) -> std::io::Result<()> {
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        if unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter().context("setns into the bench namespace")?;
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("a thread inside the namespace panicked"))?
        })
    }

    /// The namespace's TCP counters now.
    pub fn counters(&self) -> anyhow::Result<Counters> {
        self.run(|| {
            let mut c = Counters::default();
            for file in ["snmp", "netstat"] {
                let text = std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))?;
                c.parse_table(&text);
            }
            let text = std::fs::read_to_string("/proc/thread-self/net/sockstat")?;
            c.parse_sockstat(&text);
            anyhow::Ok(c)
        })?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("ip").args(args).status().context("cannot run ip (iproute2)")?;
    if !status.success() {
        bail!("ip {} failed", args.join(" "));
    }
    Ok(())
}

/// `Tcp.OutRsts`, `TcpExt.TW`, `sockstat.tw` …
#[derive(Clone, Debug, Default)]
pub struct Counters(BTreeMap<String, i64>);

impl Counters {
    pub fn get(&self, key: &str) -> i64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// `after - before` for one counter.
    pub fn delta(before: &Counters, after: &Counters, key: &str) -> i64 {
        after.get(key) - before.get(key)
    }

    /// snmp/netstat, as `Group.Name`.
    fn parse_table(&mut self, text: &str) {
        for (group, table) in procfs::counter_tables(text) {
            for (name, value) in table {
                self.0.insert(format!("{group}.{name}"), value);
            }
        }
    }

    /// `TCP: inuse 5 orphan 0 tw 3 alloc 7 mem 1`
    fn parse_sockstat(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("TCP:") {
                let words: Vec<&str> = rest.split_whitespace().collect();
                for kv in words.chunks(2) {
                    if let [k, v] = kv
                        && let Ok(v) = v.parse()
                    {
                        self.0.insert(format!("sockstat.{k}"), v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_snmp_and_sockstat() {
        let mut c = Counters::default();
        c.parse_table("Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm OutRsts\nTcp: 1 42\n");
        c.parse_sockstat("sockets: used 5\nTCP: inuse 1 orphan 0 tw 7 alloc 2 mem 0\n");
        assert_eq!(c.get("Tcp.OutRsts"), 42);
        assert_eq!(c.get("Ip.DefaultTTL"), 64);
        assert_eq!(c.get("sockstat.tw"), 7);
    }
}
