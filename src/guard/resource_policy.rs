//! Resource policy: a route's client IP allow and deny lists (CIDR). Deny wins; a
//! non-empty allow list admits only its networks. Refusals are 403.

use crate::config::Cidr;
use crate::http::reply::Reply;

use std::net::IpAddr;

use super::{Reason, Verdict};

#[derive(Debug)]
pub struct IpPolicy {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl IpPolicy {
    pub fn check(&self, ip: IpAddr) -> Verdict {
        let denied = self.deny.iter().any(|c| c.contains(ip));
        let allowed = self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip));
        if denied || !allowed {
            Verdict::Deny(Reply::error(403), Reason::IpDeny)
        } else {
            Verdict::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(p: &IpPolicy, ip: &str) -> bool {
        matches!(p.check(ip.parse().unwrap()), Verdict::Continue)
    }

    #[test]
    fn allow_and_deny() {
        let p = IpPolicy {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            deny: vec!["10.9.0.0/16".parse().unwrap()],
        };
        assert!(verdict(&p, "10.1.2.3"));
        assert!(!verdict(&p, "10.9.2.3"));
        assert!(!verdict(&p, "192.168.0.1"));
        let open = IpPolicy {
            allow: vec![],
            deny: vec![],
        };
        assert!(verdict(&open, "192.168.0.1"));
    }
}
