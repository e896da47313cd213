//! `IpSet`: CIDR blocks (IPv4 and IPv6) on a binary prefix trie, so a lookup costs
//! at most 128 steps however many blocks the set holds. IPv4 is stored as mapped
//! IPv6 (`::ffff:a.b.c.d`), so one trie serves both.

use std::net::IpAddr;

use crate::config::Cidr;

#[derive(Debug, Default)]
pub struct IpSet {
    /// Node i's children by bit; 0 = none (the root is never a child).
    children: Vec<[u32; 2]>,
    /// Whether a block ends at node i.
    terminal: Vec<bool>,
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6),
        },
    }
}

impl IpSet {
    pub fn new(blocks: &[Cidr]) -> IpSet {
        let mut s = IpSet {
            children: vec![[0, 0]],
            terminal: vec![false],
        };
        for b in blocks {
            let (addr, len) = (b.addr(), b.prefix_len());
            let len = match addr {
                IpAddr::V4(_) => 96 + u32::from(len.min(32)),
                IpAddr::V6(_) => u32::from(len.min(128)),
            };
            s.insert(bits(addr), len);
        }
        s
    }

    fn insert(&mut self, key: u128, len: u32) {
        let mut node = 0usize;
        for i in 0..len {
            if self.terminal[node] {
                return; // a shorter block already covers it
            }
            let bit = ((key >> (127 - i)) & 1) as usize;
            if self.children[node][bit] == 0 {
                self.children.push([0, 0]);
                self.terminal.push(false);
                self.children[node][bit] = (self.children.len() - 1) as u32;
            }
            node = self.children[node][bit] as usize;
        }
        self.terminal[node] = true;
    }

    pub fn is_empty(&self) -> bool {
        !self.terminal.iter().any(|&t| t)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let key = bits(ip);
        let mut node = 0usize;
        for i in 0..128 {
            if self.terminal[node] {
                return true;
            }
            let bit = ((key >> (127 - i)) & 1) as usize;
            match self.children[node][bit] {
                0 => return false,
                n => node = n as usize,
            }
        }
        self.terminal[node]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_and_v6_blocks() {
        let blocks: Vec<Cidr> = [
            "203.0.113.0/24",
            "10.0.0.0/8",
            "2001:db8::/32",
            "192.0.2.7/32",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let s = IpSet::new(&blocks);
        for ip in [
            "203.0.113.9",
            "10.200.1.1",
            "2001:db8:1::5",
            "192.0.2.7",
            "::ffff:10.0.0.1",
        ] {
            assert!(s.contains(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["203.0.114.1", "11.0.0.1", "2001:db9::1", "192.0.2.8", "::1"] {
            assert!(!s.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!(IpSet::new(&[]).is_empty());
        assert!(!IpSet::new(&[]).contains("1.2.3.4".parse().unwrap()));
    }
}
