//! The files every container of a Pod gets: `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`.

use std::net::Ipv4Addr;

/// Kubernetes' managed hosts file (kubelet `managedHostsFileContent`): localhost entries, the Pod
/// IP with its hostname (and FQDN when a subdomain is set), then the hostAliases.
pub fn hosts(
    ip: Ipv4Addr,
    hostname: &str,
    fqdn: Option<&str>,
    aliases: &[(String, Vec<String>)],
) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file (podshim).\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    match fqdn {
        Some(fqdn) => s.push_str(&format!("{ip}\t{fqdn}\t{hostname}\n")),
        None => s.push_str(&format!("{ip}\t{hostname}\n")),
    }
    if !aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for (ip, names) in aliases {
            s.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    s
}

/// DNS settings of a Pod after its dnsPolicy is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dns {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl Dns {
    /// Parse a resolv.conf. Loopback nameservers (a local stub resolver such as systemd-resolved)
    /// cannot be reached from the Pod's network namespace, so they are left out.
    pub fn from_resolv_conf(text: &str) -> Self {
        let mut dns = Dns::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ns) = words.next() {
                        let loopback = ns
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback());
                        if !loopback {
                            dns.nameservers.push(ns.to_string());
                        }
                    }
                }
                Some("search") | Some("domain") => {
                    dns.searches = words.map(str::to_string).collect()
                }
                Some("options") => dns.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        dns
    }

    /// Merge a Pod's `dnsConfig` as the kubelet does: nameservers and searches appended (without
    /// duplicates), options replacing same-named ones.
    pub fn merge(&mut self, nameservers: &[String], searches: &[String], options: &[String]) {
        for ns in nameservers {
            if !self.nameservers.contains(ns) {
                self.nameservers.push(ns.clone());
            }
        }
        for s in searches {
            if !self.searches.contains(s) {
                self.searches.push(s.clone());
            }
        }
        for o in options {
            let name = o.split(':').next().unwrap_or(o);
            self.options
                .retain(|x| x.split(':').next().unwrap_or(x) != name);
            self.options.push(o.clone());
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.searches.is_empty() {
            s.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in self.nameservers.iter().take(3) {
            s.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lists_pod_ip_and_aliases() {
        let h = hosts(
            Ipv4Addr::new(10, 66, 0, 2),
            "web",
            None,
            &[("1.2.3.4".into(), vec!["a".into(), "b".into()])],
        );
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.66.0.2\tweb\n"));
        assert!(h.ends_with("1.2.3.4\ta\tb\n"));
        let h = hosts(
            Ipv4Addr::new(10, 66, 0, 2),
            "web",
            Some("web.sub.default.svc"),
            &[],
        );
        assert!(h.contains("10.66.0.2\tweb.sub.default.svc\tweb\n"));
    }

    #[test]
    fn resolv_conf_drops_loopback_and_merges() {
        let mut d = Dns::from_resolv_conf(
            "# c\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch a b\noptions ndots:1 edns0\n",
        );
        assert_eq!(d.nameservers, vec!["192.0.2.1"]);
        assert_eq!(d.searches, vec!["a", "b"]);
        d.merge(&["192.0.2.9".into()], &["c".into()], &["ndots:5".into()]);
        assert_eq!(
            d.render(),
            "search a b c\nnameserver 192.0.2.1\nnameserver 192.0.2.9\noptions edns0 ndots:5\n"
        );
    }
}
